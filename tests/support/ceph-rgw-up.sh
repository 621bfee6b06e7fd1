#!/usr/bin/env bash
# ceph-rgw-up.sh: a throw-away single-host Ceph for seau's S3 tests (tests/support/ceph.py):
#   1 ceph-mon + 1 ceph-osd (memstore, data in RAM) + 1 radosgw (beast, HTTP on 127.0.0.1).
# No systemd, no cephadm, no Docker; every file lives under DATA_DIR; daemons are
# stopped by the PIDs in DATA_DIR/run/*.pid. Ceph 16.2 (pacific), Debian 12.
# Adapted from the course's shared ../shared/s3-engines/ceph-rgw-up.sh (its README there
# measures start-up, memory and throughput, and lists where RGW 16.2 differs from AWS);
# seau's copy drops ceph-mgr and virtual-hosted addressing, which no test uses.
#
# Packages (root; .ci/run installs them when missing):
#   apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl
#
# Usage:
#   ceph-rgw-up.sh start  DATA_DIR RGW_PORT [MON_PORT] [OSD_PORT_MIN]
#   ceph-rgw-up.sh stop   DATA_DIR      # SIGTERM every daemon by its pid file, SIGKILL after 10 s, rm -rf DATA_DIR
#   ceph-rgw-up.sh status DATA_DIR
#   ceph-rgw-up.sh rgw    DATA_DIR NAME PORT   # (re)start gateway client.rgw.NAME on PORT (after a kill,
#                                               # or extra gateways on the same data: NAME=b, c, ...)
#   MON_PORT defaults to RGW_PORT+1; the OSD binds 4 ports in [OSD_PORT_MIN, OSD_PORT_MIN+20]
#   (default RGW_PORT+2 ..). Use disjoint port ranges to run several clusters side by side.
# Env (optional):
#   S3_ACCESS_KEY / S3_SECRET_KEY  keys of the S3 user "test" (default testaccesskey/testsecretkey)
#   OSD_STORE        memstore (default: objects live in the OSD's RAM, lost on stop) or
#                    bluestore (objects in a sparse file DATA_DIR/osd.0/block; for benchmarks
#                    that write gigabytes)
#   MEMSTORE_BYTES   memstore capacity in bytes, held in RAM only as data is written (default 8 GiB)
#   BLUESTORE_BYTES  size of the sparse bluestore block file (default 20 GiB)
#   KEEP_DATA=1      `stop` leaves DATA_DIR in place (logs: DATA_DIR/log/*.log)
# `start` exits 0 once S3 answers, printing shell assignments (S3_ENDPOINT=... etc.) on stdout,
# phase timings on stderr. On failure it stops what it started and exits non-zero.
set -euo pipefail

cmd=${1:?usage: $0 start|stop|status|rgw DATA_DIR ...}
D=${2:?DATA_DIR required}
D=$(realpath -m "$D")
CONF="$D/ceph.conf"

alive() {  # a daemonized process becomes a zombie of PID 1 until reaped: count that as dead
  [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

stop_cluster() {  # gateways first, then osd, mon
  local f pid
  for f in "$D"/run/client.rgw.*.pid "$D"/run/osd.*.pid "$D"/run/mon.*.pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 200); do alive "$pid" || break; sleep 0.05; done
      if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
  done
  if [ "${KEEP_DATA:-0}" != 1 ]; then rm -rf "$D"; fi
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_rgw() {  # wait_rgw NAME PORT: until the gateway answers on PORT, or its process died
  local n=$1 port=$2
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    if [ -s "$D/run/client.rgw.$n.pid" ] && ! alive "$(cat "$D/run/client.rgw.$n.pid")"; then
      echo "radosgw $n exited (port $port taken?): $(grep -m1 -iE 'bind|error' "$D/log/client.rgw.$n.log")" >&2; return 1
    fi
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" && alive "$(cat "$D/run/client.rgw.$n.pid")"
}

case "$cmd" in
  stop)   stop_cluster; exit 0 ;;
  rgw)    # (re)start a gateway on a running cluster: after a kill (fault tests), or extra ones (scale-out)
          n=${3:?usage: $0 rgw DATA_DIR NAME PORT}; port=${4:?PORT required}; export CEPH_CONF="$CONF"
          f="$D/run/client.rgw.$n.pid"
          if [ -s "$f" ] && alive "$(cat "$f")"; then echo "client.rgw.$n already running" >&2; exit 1; fi
          if port_taken "$port"; then echo "port $port is already in use" >&2; exit 1; fi
          rm -f "$f"
          radosgw -n "client.rgw.$n" --rgw-frontends="beast endpoint=127.0.0.1:$port"
          wait_rgw "$n" "$port"; echo "S3_ENDPOINT=http://127.0.0.1:$port"; exit 0 ;;
  status) for f in "$D"/run/*.pid; do [ -e "$f" ] || continue
            p=$(cat "$f"); echo "$(basename "$f" .pid) $p $(alive "$p" && echo up || echo dead)"; done
          exit 0 ;;
  start)  ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac

RGW_PORT=${3:?RGW_PORT required}
MON_PORT=${4:-$((RGW_PORT + 1))}
OSD_PORT_MIN=${5:-$((RGW_PORT + 2))}
OSD_PORT_MAX=$((OSD_PORT_MIN + 20))
AK=${S3_ACCESS_KEY:-testaccesskey}
SK=${S3_SECRET_KEY:-testsecretkey}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-8589934592}
case "${OSD_STORE:-memstore}" in
  memstore)  STORE_CONF="osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES" ;;
  bluestore) STORE_CONF="osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${BLUESTORE_BYTES:-21474836480}
bluestore fsck on mkfs = false
osd memory target = 1073741824" ;;
  *) echo "OSD_STORE must be memstore or bluestore" >&2; exit 2 ;;
esac
t0=$(date +%s%N)
phase() { echo "[ceph-rgw-up +$(( ($(date +%s%N) - t0) / 1000000 ))ms] $*" >&2; }

if ls "$D"/run/*.pid >/dev/null 2>&1; then
  echo "$D has pid files; run '$0 stop $D' first" >&2; exit 1
fi
for port in "$RGW_PORT" "$MON_PORT"; do  # fail fast instead of talking to someone else's server
  if port_taken "$port"; then echo "port $port is already in use" >&2; exit 1; fi
done
rm -rf "$D"; mkdir -p "$D"/{run,log,crash,mon.a,osd.0,rgw}
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "start failed (rc=$rc); logs in $D/log (kept)" >&2; KEEP_DATA=1 stop_cluster; fi' EXIT
FSID=$(uuidgen)

cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
ms bind port min = $OSD_PORT_MIN
ms bind port max = $OSD_PORT_MAX
# test-only: no cephx (everything is on 127.0.0.1). radosgw defaults to
# ms_mon_client_mode=secure, which needs cephx, hence the crc modes.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
mon warn on insecure global id reclaim allowed = false
run dir = $D/run
crash dir = $D/crash
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
mon data = $D/\$name
osd data = $D/\$name
rgw data = $D/rgw
keyring = $D/keyring
# one OSD, size 1, never "full", few PGs, fast osdmap proposals (default 1 s each)
$STORE_CONF
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
osd crush chooseleaf type = 0
paxos propose interval = 0.05
mon data avail warn = 2
mon data avail crit = 1
mon osd full ratio = .99
mon osd nearfull ratio = .99
mon osd backfillfull ratio = .99
osd failsafe full ratio = .99
osd class load list = *
osd class default list = *
# a SIGKILLed radosgw leaves watches on its control objects; metadata writes (CreateBucket...) on the
# other/restarted gateways block until they expire (default 30 s); clients ping watches every objecter tick
osd client watch timeout = 3
objecter tick interval = 1

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
# reclaim deleted/overwritten object data quickly (memstore keeps it in RAM; default 2 h)
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
export CEPH_CONF="$CONF"
: > "$D/keyring"

# --- mon
monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap"
ceph-mon -i a
ceph --connect-timeout 30 mon stat >/dev/null
phase "mon up"

# --- osd
OSD_UUID=$(uuidgen)
OSD_ID=$(ceph osd new "$OSD_UUID")
ceph-osd -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" 2>>"$D/log/osd-mkfs.err"
ceph-osd -i "$OSD_ID" 2>>"$D/log/osd.stderr"

# pools radosgw would otherwise create lazily (the first CreateBucket/PutObject would pay ~1 s);
# one python3-rados process (package python3-rados, a dependency of ceph-common) instead of 14 `ceph` CLI calls
/usr/bin/python3 - "$OSD_ID" <<'PY'
import json, sys, time, rados
c = rados.Rados(conffile="")  # CEPH_CONF from env
c.connect(timeout=30)
for p in [".rgw.root", "default.rgw.log", "default.rgw.control", "default.rgw.meta",
          "default.rgw.buckets.index", "default.rgw.buckets.data", "default.rgw.buckets.non-ec"]:
    for cmd in ({"prefix": "osd pool create", "pool": p, "pg_num": 8, "pgp_num": 8},
                {"prefix": "osd pool application enable", "pool": p, "app": "rgw"}):
        rc, _, err = c.mon_command(json.dumps(cmd), b"")
        assert rc == 0, (cmd, rc, err)
osd = int(sys.argv[1])
for _ in range(600):  # wait until the OSD is up (PG peering then takes ms; early requests just wait)
    rc, out, _ = c.mon_command(json.dumps({"prefix": "osd dump", "format": "json"}), b"")
    if rc == 0 and any(o["osd"] == osd and o["up"] for o in json.loads(out)["osds"]):
        break
    time.sleep(0.1)
else:
    sys.exit("osd did not come up")
c.shutdown()
PY
phase "osd up, pools created"

# --- S3 user (also creates the default realm/zonegroup/zone), then radosgw
radosgw-admin user create --uid=test --display-name=test \
  --access-key="$AK" --secret-key="$SK" >"$D/log/user-create.json"
phase "user created"
radosgw -n client.rgw.a
wait_rgw a "$RGW_PORT"
phase "rgw answering"

trap - EXIT
cat <<EOF
S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_ACCESS_KEY=$AK
S3_SECRET_KEY=$SK
S3_REGION=us-east-1
CEPH_CONF=$CONF
CEPH_READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
EOF
