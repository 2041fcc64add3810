"""A real single-node Slurm on this machine, for the Slurm test (Debian's slurm-wlm and munge).

    with Cluster(tmp_path) as cluster:     # munged, slurmctld and slurmd started, the node idle
        subprocess.run(["sbatch", ...], env=cluster.env)
    # every daemon stopped again

Everything lives under the given folder (configuration, spool, state, logs, munge socket) and
the daemons listen on free ports, so the test leaves the machine as it found it. No accounting
(no slurmdbd): ``sacct`` cannot answer, as on many small clusters. Needs root (the daemons run
as root) and the Debian packages; :func:`missing` says why not where they are absent.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

from tests.cdp import free_port, wait_until

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def missing():
    """Why this machine cannot run the cluster, or None."""
    absent = [p for p in PROGRAMS if shutil.which(p) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (Debian: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the Slurm daemons of this test run as root"
    if not os.path.isfile("/etc/munge/munge.key"):
        return "no munge key (/etc/munge/munge.key; Debian's munge package writes one)"
    return None


class Cluster:
    def __init__(self, folder, cpus=2):
        self.folder, self.cpus = folder, cpus
        self.host = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
        self.pids = []

    def __enter__(self):
        f = self.folder
        for name in ("spool", "state", "munge"):
            (f / name).mkdir(parents=True, exist_ok=True)
        socket_path = f / "munge" / "munge.socket"
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 ** 20 // 2
        (f / "slurm.conf").write_text(f"""\
ClusterName=ntktest
SlurmctldHost={self.host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={f / "state"}
SlurmdSpoolDir={f / "spool"}
SlurmctldPidFile={f / "slurmctld.pid"}
SlurmdPidFile={f / "slurmd.pid"}
SlurmctldLogFile={f / "slurmctld.log"}
SlurmdLogFile={f / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=300
NodeName={self.host} CPUs={self.cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self._start(["munged", "--force", f"--socket={socket_path}", f"--pid-file={f / 'munged.pid'}",
                     f"--log-file={f / 'munged.log'}", f"--seed-file={f / 'munge' / 'seed'}"], f / "munged.pid")
        self._start(["slurmctld", "-f", str(f / "slurm.conf")], f / "slurmctld.pid")
        self._start(["slurmd", "-f", str(f / "slurm.conf")], f / "slurmd.pid")
        wait_until(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                                                    env=self.env).stdout, 60, "the Slurm node idle")
        return self

    def _start(self, command, pid_file):
        subprocess.run(command, check=True, env=self.env, capture_output=True, timeout=60)
        self.pids.append(int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, str(pid_file))))

    def __exit__(self, *exc):
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            end = time.time() + 30
            while time.time() < end and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.2)
