// `node --import tsx --import ./throwingReducer.mjs ...`: see throwingReducer.ts.
import { register } from "node:module"

register("./throwingReducerHooks.mjs", import.meta.url)
