#!/usr/bin/env bash
# A real scheduler on this machine: installs Debian's slurm-wlm and munge, starts a one-node
# Slurm cluster on localhost (slurmctld + slurmd, as root), plans a small search on synthetic
# data, runs it as the job array of examples/slurm/tune.sbatch, finalizes it, and checks that
# trials.csv (but for wall time) and best.safetensors equal those of one `tune` process.
#
#   examples/slurm/test-local.sh [BINARY]      # default target/release/autoencoder
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${1:-target/release/autoencoder}")
WORK=$(mktemp -d /tmp/autoencoder-slurm.XXXXXX)
trap 'scancel --user=root >/dev/null 2>&1 || true; pkill -x slurmd || true; pkill -x slurmctld || true' EXIT

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key and the daemon.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown -R munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
pgrep -x munged >/dev/null || runuser -u munge -- munged 2>/dev/null || munged --force

# One node, this host, no cgroups (proctrack/linuxproc, task/none).
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
pkill -x slurmctld || true; pkill -x slurmd || true
slurmctld -c -i
slurmd -c
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix' && break; sleep 1; done
sinfo

# Small synthetic data: 200 images (squares whose size is the label).
python3 - "$WORK/data" <<'PY'
import os, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
n = 200; px = bytearray(n * 784); labels = bytes(i % 10 for i in range(n))
for i in range(n):
    side, off = 6 + labels[i], 3 + i % 7
    for y in range(off, off + side):
        for x in range(off, off + side):
            px[i * 784 + y * 28 + x] = 150 + i % 100
def images(a, b): return struct.pack(">IIII", 0x803, b - a, 28, 28) + bytes(px[a * 784:b * 784])
def labs(a, b): return struct.pack(">II", 0x801, b - a) + labels[a:b]
open(f"{d}/train-images-idx3-ubyte", "wb").write(images(0, 160))
open(f"{d}/train-labels-idx1-ubyte", "wb").write(labs(0, 160))
open(f"{d}/t10k-images-idx3-ubyte", "wb").write(images(160, 200))
open(f"{d}/t10k-labels-idx1-ubyte", "wb").write(labs(160, 200))
PY
DATA=(--data-dir "$WORK/data" --allow-custom-data)
SEARCH=(--model modified --trials 4 --epochs 2 --batch-sizes 16,32 --seed 3)

"$BIN" tune "${SEARCH[@]}" --out "$WORK/one" "${DATA[@]}" >/dev/null
"$BIN" tune --plan "${SEARCH[@]}" --out "$WORK/search" "${DATA[@]}"
# The job script calls `autoencoder`: put the binary on the jobs' PATH, and the data flags in.
mkdir -p "$WORK/bin" && ln -sf "$BIN" "$WORK/bin/autoencoder"
sed "s|--threads \"\${SLURM_CPUS_PER_TASK:-2}\"|--threads 1 ${DATA[*]}|" examples/slurm/tune.sbatch > "$WORK/tune.sbatch"
start=$(date +%s)
job=$(PATH="$WORK/bin:$PATH" sbatch --parsable --array=1-4 --cpus-per-task=1 --mem=1G --time=10 \
  --output="$WORK/slurm-%A_%a.out" --chdir="$WORK" "$WORK/tune.sbatch" "$WORK/search")
echo "submitted job array $job"
while squeue -h -j "$job" 2>/dev/null | grep -q .; do sleep 1; done
echo "job array $job done in $(( $(date +%s) - start )) s"
sacct -j "$job" -n -o JobID,State 2>/dev/null || true
"$BIN" tune --finalize "$WORK/search" "${DATA[@]}" | tail -2

untimed() { python3 -c 'import csv,sys; r=list(csv.reader(open(sys.argv[1]))); i=r[0].index("wall_time_s"); print("\n".join(",".join(c for j,c in enumerate(row) if j!=i) for row in r))' "$1"; }
diff <(untimed "$WORK/one/trials.csv") <(untimed "$WORK/search/trials.csv")
cmp "$WORK/one/best.safetensors" "$WORK/search/best.safetensors"
echo "OK: the Slurm job array's search equals the one-process search (trials.csv but for wall time, best.safetensors bytes)"
