/**
 * The flags that say how to reach etcd, shared by `isinit` and `isinitd` (parseArgs options; their
 * values are merged with the environment and the `--etcd-config` file in cluster/connection.ts).
 * A module of its own, with no imports, so that neither command loads cluster mode to parse them.
 */
export const etcdFlags = {
  etcd: { type: "string" },
  "etcd-config": { type: "string" },
  "etcd-cacert": { type: "string" },
  "etcd-cert": { type: "string" },
  "etcd-key": { type: "string" },
  "etcd-user": { type: "string" },
  "etcd-password-file": { type: "string" },
  "etcd-password": { type: "string" },
  cluster: { type: "string" },
} as const

/** Why `--etcd-password` is refused (the flag exists to say so), by isinit and isinitd alike. */
export const passwordFlagRefusal = "--etcd-password: never on the command line (ps shows it to every user): use --etcd-password-file FILE or $ISINIT_ETCD_PASSWORD"
