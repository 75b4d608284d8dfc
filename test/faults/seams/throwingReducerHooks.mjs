// Module loader hooks: every import of src/core/reducer.ts gets throwingReducer.ts instead, except
// the one that module makes of the real reducer. Registered after tsx's (`--import tsx` first), so
// these run first and tsx still resolves and loads the TypeScript.
const seam = new URL("./throwingReducer.ts", import.meta.url).href

export const resolve = async (specifier, context, nextResolve) => {
  const resolved = await nextResolve(specifier, context)
  return resolved.url.endsWith("/src/core/reducer.ts") && context.parentURL !== seam ? { ...resolved, url: seam } : resolved
}
