// Preloaded into an isinitd under test (NODE_OPTIONS=--import): etcd3 then tries the hosts in a
// fixed order instead of a random one (see members.test.ts), so a stream lands on the member that
// is down every time. Test-only: nothing in isinitd reads it.
import { ConnectionPool } from "etcd3/lib/connection-pool.js"

ConnectionPool.deterministicOrder = true
