#!/bin/sh
# Creates the etcd roles and users of one isinit cluster, each allowed only what it needs
# (docs/cluster.md, "Roles"):
#
#   isinit-CLUSTER-node-NODE  one per node: reads the config, the desired levels and every failover
#                             key; writes only its own status (nodes/NODE), seen mark (seen/NODE),
#                             overrides (desired-node/NODE/) and failover keys (failover-node/NODE/:
#                             its claim on the name, its candidate keys, proclamations and bans)
#   isinit-CLUSTER-operator   tell, clear, forget, rolling tells (rollout/, rollout-driver/) (and, with
#                             failover groups, move); reads everything
#   isinit-CLUSTER-config     config push; reads everything
#
# A user of the same name is created for each role and granted it. Log in as a user with a client
# certificate whose CN is the user's name (etcd's --client-cert-auth, auth enabled), or with a
# password (-p).
#
# Usage: scripts/etcd-roles.sh [-p DIR] CLUSTER NODE...
#   -p DIR  give each user it creates a random password, written to DIR/USER.password (mode 0600);
#           without -p, users have no password and log in by certificate only.
# etcdctl (Debian: etcd-client) must reach etcd as root: set its usual environment, e.g.
#   ETCDCTL_ENDPOINTS=https://10.0.0.1:2379 ETCDCTL_CACERT=ca.crt ETCDCTL_CERT=root.crt ETCDCTL_KEY=root.key
# (or ETCDCTL_USER=root:PASSWORD). Run it before or after `etcdctl auth enable`. Running it again
# grants the permissions again and adds new nodes; existing users and their passwords are kept.
set -eu

passwords=""
if [ "${1:-}" = "-p" ]; then
  [ $# -ge 2 ] || { echo "etcd-roles.sh: -p needs a directory" >&2; exit 2; }
  passwords=$2
  shift 2
fi
if [ $# -lt 1 ]; then
  echo "usage: scripts/etcd-roles.sh [-p DIR] CLUSTER NODE..." >&2
  exit 2
fi
cluster=$1
shift
case "$cluster" in */* | "" ) echo "etcd-roles.sh: bad cluster name \"$cluster\"" >&2; exit 2 ;; esac
p="/isinit/$cluster"
export ETCDCTL_API=3

# A role, created unless it exists (etcdctl's error for an existing one is not an error here).
role() {
  etcdctl role get "$1" >/dev/null 2>&1 || etcdctl role add "$1" >/dev/null
}

# PERMISSION KEY [RANGE_END | --prefix]
grant() {
  r=$1
  shift
  etcdctl role grant-permission "$r" "$@" >/dev/null
}

# A user with that role: a random password in DIR with -p, else none (certificate CN only).
user() {
  if ! etcdctl user get "$1" >/dev/null 2>&1; then
    if [ -n "$passwords" ]; then
      mkdir -p "$passwords"
      secret=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
      (umask 077 && printf '%s\n' "$secret" > "$passwords/$1.password")
      etcdctl user add "$1" --new-user-password="$secret" >/dev/null
    else
      etcdctl user add "$1" --no-password >/dev/null
    fi
  fi
  etcdctl user grant-role "$1" "$1" >/dev/null
}

operator="isinit-$cluster-operator"
role "$operator"
grant "$operator" read "$p/" --prefix
for write in desired/ desired-node/ seen/ audit/ failover/ rollout/ rollout-driver/; do grant "$operator" readwrite "$p/$write" --prefix; done
user "$operator"

config="isinit-$cluster-config"
role "$config"
grant "$config" read "$p/" --prefix
grant "$config" readwrite "$p/config"
for write in history/ audit/; do grant "$config" readwrite "$p/$write" --prefix; done
user "$config"

for node in "$@"; do
  case "$node" in */* | "" ) echo "etcd-roles.sh: bad node name \"$node\"" >&2; exit 2 ;; esac
  r="isinit-$cluster-node-$node"
  role "$r"
  # config, desired-node/, desired/, failover-node/ and failover/ sort together: one range is
  # everything a node reads and watches (etcd checks a watch's range against one permission).
  grant "$r" read "$p/config" "$p/failover0"
  grant "$r" readwrite "$p/desired-node/$node/" --prefix
  grant "$r" readwrite "$p/nodes/$node"
  grant "$r" readwrite "$p/seen/$node"
  grant "$r" readwrite "$p/failover-node/$node/" --prefix
  user "$r"
done
echo "etcd-roles.sh: roles and users of cluster $cluster: $operator, $config$(for n in "$@"; do printf ', isinit-%s-node-%s' "$cluster" "$n"; done)"
