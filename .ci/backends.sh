#!/usr/bin/env bash
# Real batch systems for lwr's cluster-manager tests, on loopback, on one Debian 12 host (run as root).
#
#   bash .ci/backends.sh [start|status|stop|env]      (default: start)
#
# start is idempotent and fast once everything runs (a second run restarts nothing):
#   * single-node Slurm 22.05: munged + slurmctld + slurmd, with slurmdbd on the local MariaDB so that
#     `sacct` works (MariaDB is used if it answers, started from its package otherwise)
#   * Son of Grid Engine 8.1.9 single-host cell + libdrmaa (canonical host name "localhost")
#   * a private sshd on 127.0.0.1:2222, user rjtest, key /var/lib/lwr-test-sshd/id_ed25519
#   * a second unprivileged user lwrjob in group lwrjobs (for queued_external_drmaa), sudo, the sudoers rule
#     and the helpers' root-owned settings file /etc/lwr/drmaa_helpers.env
# Adapted from the tested recipes described in the project's shared backends notes; self-contained.
# `env` prints what a DRMAA client needs (SGE_ROOT, SGE_CELL, DRMAA_LIBRARY_PATH, GLIBC_TUNABLES).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[backends.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
# a pid is alive if it exists and is not a zombie (PID 1 on these machines may reap late)
pid_alive() { local s; s=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) && [ -n "$s" ] && [ "$s" != Z ]; }
alive() { [ -s "$1" ] && pid_alive "$(cat "$1")"; }
stop_pidfile() {
  local p
  if alive "$1"; then
    p=$(cat "$1"); log "stopping pid $p ($1)"; kill "$p"
    for _ in $(seq 150); do pid_alive "$p" || break; sleep 0.1; done
    if pid_alive "$p"; then kill -9 "$p" || true; fi
  fi
}

# ---------------------------------------------------------------------------------------------- packages
SGE_ROOT=/var/lib/gridengine
SGE_CELL=default
DRMAA_LIB=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
export SGE_ROOT SGE_CELL

install_pkgs() {
  local need=()
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null || need+=(slurm-wlm munge)
  command -v slurmdbd >/dev/null || need+=(slurmdbd)
  command -v mariadbd >/dev/null || need+=(mariadb-server)
  { [ -x /usr/lib/gridengine/sge_qmaster ] && [ -x /usr/lib/gridengine/sge_execd ] && command -v qsub >/dev/null \
    && [ -e "$DRMAA_LIB" ]; } || need+=(gridengine-master gridengine-exec gridengine-client gridengine-drmaa1.0)
  { [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null; } || need+=(openssh-server openssh-client)
  command -v sudo >/dev/null || need+=(sudo)
  # drmaa_launch/drmaa_kill run as the job's user with the system python3, which needs drmaa
  [ -e /usr/lib/python3/dist-packages/drmaa/__init__.py ] || need+=(python3-drmaa)
  # jobs run as the second user get a bare Grid Engine environment; Galaxy's tools (and
  # pulsar-check's) call "python", which Debian only provides through python-is-python3
  [ -e /usr/bin/python ] || need+=(python-is-python3)
  # tests/security builds an attacker's shared library to show the sudo helpers never load it
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  # environment modules for the remote dependency resolution tests (Galaxy's lmod resolver)
  [ -x /usr/share/lmod/lmod/libexec/lmod ] || need+=(lmod)
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local p
  for p in gridengine-common gridengine-client gridengine-master gridengine-exec; do
    printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string %s\n%s shared/gridenginemaster string localhost\n' \
      "$p" "$p" "$SGE_CELL" "$p"
  done | debconf-set-selections
  # postinsts would start daemons (sshd on 0.0.0.0:22, munge, exim4...) through invoke-rc.d: deny that
  local tmp_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; tmp_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$tmp_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

# ---------------------------------------------------------------------------------------------- slurm
SLURM_CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
SLURM_RUN=/run/slurm
SLURM_STATE=/var/lib/slurm/slurmctld
SLURM_SPOOL=/var/lib/slurm/slurmd
SLURM_LOG=/var/log/slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$SLURM_RUN/slurmctld.pid
SLURMD_PID=$SLURM_RUN/slurmd.pid
DBD_PID=$SLURM_RUN/slurmdbd.pid
MYSQL_PID=/run/mysqld/mysqld.pid
DB_PASS=slurmdbpass

slurm_config() {
  mkdir -p /etc/slurm "$SLURM_RUN" "$SLURM_STATE" "$SLURM_SPOOL" "$SLURM_LOG"
  chown slurm:slurm "$SLURM_RUN" "$SLURM_STATE" "$SLURM_LOG"
  local cpus mem tmp
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {printf "%d", $2/1024*0.9}' /proc/meminfo)
  tmp=$(mktemp)
  cat >"$tmp" <<CONF
# Single-host Slurm for lwr's tests (written by .ci/backends.sh)
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SLURM_STATE
SlurmdSpoolDir=$SLURM_SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$SLURM_LOG/slurmctld.log
SlurmdLogFile=$SLURM_LOG/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_LOG/jobcomp.log
# finished jobs stay visible to squeue for MinJobAge seconds; lwr falls back to sacct after that
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
CommunicationParameters=NoInAddrAny
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  if ! cmp -s "$tmp" "$SLURM_CONF"; then install -m 0644 "$tmp" "$SLURM_CONF"; SLURM_CONF_CHANGED=1; log "wrote $SLURM_CONF"; fi
  cat >"$tmp" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
LogFile=$SLURM_LOG/slurmdbd.log
PidFile=$DBD_PID
CONF
  # slurmdbd refuses a slurmdbd.conf that is not 0600 and owned by SlurmUser
  install -m 0600 -o slurm -g slurm "$tmp" "$DBD_CONF"
  rm -f "$tmp"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge; chown munge:munge /run/munge; chmod 0755 /run/munge
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "munged did not come up"; exit 1
}

start_accounting() {
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  if ! mysqladmin ping >/dev/null 2>&1; then
    log "starting mariadbd (127.0.0.1:3306)"
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file="$MYSQL_PID" \
      </dev/null >>/var/log/mysql-lwr-tests.log 2>&1 &
    for _ in $(seq 300); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
            CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
            FLUSH PRIVILEGES;"
  if ! alive "$DBD_PID"; then
    log "starting slurmdbd (127.0.0.1:6819)"
    /usr/sbin/slurmdbd
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.1; done
  fi
}

start_slurm() {
  if [ "${SLURM_CONF_CHANGED:-0}" = 1 ] && { alive "$CTLD_PID" || alive "$SLURMD_PID"; }; then
    log "slurm.conf changed; restarting slurmctld + slurmd"
    stop_pidfile "$SLURMD_PID"; stop_pidfile "$CTLD_PID"
  fi
  alive "$CTLD_PID" || { log "starting slurmctld"; /usr/sbin/slurmctld; }
  alive "$SLURMD_PID" || { log "starting slurmd"; /usr/sbin/slurmd -N localhost; }
  local st=""
  for _ in $(seq 150); do
    st=$(sinfo -h -n localhost -o '%T' 2>/dev/null || true)
    case "$st" in idle*|mixed*|allocated*) break ;; esac
    sleep 0.2
  done
  case "$st" in
    idle*|mixed*|allocated*) ;;
    drain*|down*) log "node is $st; resuming"; scontrol update NodeName=localhost State=RESUME || true; sleep 1 ;;
    *) log "slurm node state '$st'; see $SLURM_LOG/slurmctld.log and slurmd.log"; exit 1 ;;
  esac
}

# ---------------------------------------------------------------------------------------------- SGE
SGE_COMMON=$SGE_ROOT/$SGE_CELL/common
SGE_SPOOL=/var/spool/gridengine
QMASTER_PID=$SGE_SPOOL/qmaster/qmaster.pid
EXECD_PID=/run/gridengine/execd.pid

sge_init_cell() {
  mkdir -p "$SGE_COMMON" /run/gridengine "$SGE_SPOOL/qmaster/job_scripts" "$SGE_SPOOL/spooldb" "$SGE_SPOOL/execd"
  chown sgeadmin:sgeadmin "$SGE_ROOT" "$SGE_ROOT/$SGE_CELL" "$SGE_COMMON" /run/gridengine \
    "$SGE_SPOOL/qmaster" "$SGE_SPOOL/qmaster/job_scripts" "$SGE_SPOOL/spooldb" "$SGE_SPOOL/execd"
  [ -e "$SGE_COMMON/bootstrap" ] || install -m0644 -o sgeadmin -g sgeadmin /usr/share/gridengine/default-bootstrap "$SGE_COMMON/bootstrap"
  # SGE wants forward and reverse lookups to agree; the host's name resolves to 127.0.0.1 whose reverse
  # is "localhost", so make "localhost" the canonical name and the real host name an alias.
  local aliases
  aliases=$(printf '%s\n' "$(hostname)" "$(hostname -s 2>/dev/null || true)" "$(hostname -f 2>/dev/null || true)" \
            | grep -v -x -e '' -e localhost | sort -u | tr '\n' ' ')
  echo "localhost $aliases" >"$SGE_COMMON/host_aliases"
  echo localhost >"$SGE_COMMON/act_qmaster"
  chown sgeadmin:sgeadmin "$SGE_COMMON/act_qmaster" "$SGE_COMMON/host_aliases"
  if [ ! -e "$SGE_SPOOL/spooldb/sge" ]; then
    log "initialising the SGE cell spool"
    su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL $SGE_SPOOL/spooldb sgeadmin" sgeadmin >/dev/null
  fi
}

qc() { local out; out=$(qconf "$@" 2>&1) || { echo "qconf $*: $out" >&2; return 1; }; }

sge_configure() {
  local d; d=$(mktemp -d)
  [ -f /var/lib/gridengine/.lwr-configured ] && [ "$(cat /var/lib/gridengine/.lwr-configured)" = "$(nproc)" ] && return 0
  qconf -sconf global | grep -v '^#' >"$d/global"
  awk -v rp='accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00' '
    BEGIN { v["min_uid"]="0"; v["min_gid"]="0"; v["reporting_params"]=rp; v["load_report_time"]="00:00:05" }
    /^[ \t]/ { if (skip) next }
    /^[^ \t]/ { skip=0; if ($1 in v) { printf "%-28s %s\n", $1, v[$1]; done[$1]=1; skip=1; next } }
    { print }
    END { for (k in v) if (!(k in done)) printf "%-28s %s\n", k, v[k] }' "$d/global" >"$d/global.new"
  mv "$d/global.new" "$d/global"
  (cd "$d" && qc -Mconf global)   # the file name must be the configuration's name
  qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
    -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
    -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' \
    -e 's/^job_load_adjustments .*/job_load_adjustments              NONE/' \
    -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time        0:0:0/' >"$d/sched"
  qc -Msconf "$d/sched"
  qconf -ss 2>/dev/null | grep -qx localhost || qc -as localhost
  if ! qconf -sel 2>/dev/null | grep -qx localhost; then
    printf 'hostname localhost\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' >"$d/exec"
    qc -Ae "$d/exec"
  fi
  if ! qconf -shgrpl 2>/dev/null | grep -qx '@allhosts'; then
    printf 'group_name @allhosts\nhostlist localhost\n' >"$d/hgrp"; qc -Ahgrp "$d/hgrp"
  fi
  {
    printf '%-21s %s\n' qname all.q hostlist @allhosts seq_no 0 load_thresholds NONE suspend_thresholds NONE \
      nsuspend 1 suspend_interval 00:05:00 priority 0 min_cpu_interval 00:05:00 processors UNDEFINED \
      qtype "BATCH INTERACTIVE" ckpt_list NONE pe_list NONE rerun FALSE slots "$(nproc)" tmpdir /tmp \
      shell /bin/sh prolog NONE epilog NONE shell_start_mode unix_behavior starter_method NONE \
      suspend_method NONE resume_method NONE terminate_method NONE notify 00:00:60 owner_list NONE \
      user_lists NONE xuser_lists NONE subordinate_list NONE complex_values NONE projects NONE \
      xprojects NONE calendar NONE initial_state default
    for r in s_rt h_rt s_cpu h_cpu s_fsize h_fsize s_data h_data s_stack h_stack s_core h_core s_rss h_rss s_vmem h_vmem; do
      printf '%-21s %s\n' "$r" INFINITY
    done
  } >"$d/queue"
  if qconf -sql 2>/dev/null | grep -qx all.q; then qc -Mq "$d/queue"; else qc -Aq "$d/queue"; fi
  rm -rf "$d"
  nproc >/var/lib/gridengine/.lwr-configured
}

start_sge() {
  sge_init_cell
  if ! alive "$QMASTER_PID"; then log "starting sge_qmaster"; (cd / && /usr/sbin/sge_qmaster); fi
  for _ in $(seq 100); do qconf -sh >/dev/null 2>&1 && break; sleep 0.2; done
  qconf -sh >/dev/null || { log "sge_qmaster is not answering; see $SGE_SPOOL/qmaster/messages"; exit 1; }
  sge_configure
  if ! alive "$EXECD_PID"; then log "starting sge_execd"; (cd / && SGE_EXECD_PIDFILE=$EXECD_PID /usr/sbin/sge_execd); fi
  local line=""
  for _ in $(seq 150); do
    line=$(qstat -f -q all.q@localhost 2>/dev/null | grep '^all.q@' || true)
    if [ -n "$line" ] && [ -z "$(echo "$line" | awk '{print $6}')" ] && ! echo "$line" | grep -q -- '-NA-'; then
      return 0
    fi
    sleep 0.2
  done
  log "SGE queue all.q@localhost not usable: $line"; exit 1
}

# ---------------------------------------------------------------------------------------------- sshd
SSHD_DIR=/var/lib/lwr-test-sshd
SSHD_PORT=2222
SSHD_USER=rjtest
SSHD_PIDFILE=$SSHD_DIR/sshd.pid

start_sshd() {
  mkdir -p "$SSHD_DIR" /run/sshd; chmod 0755 "$SSHD_DIR" /run/sshd
  [ -s "$SSHD_DIR/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C lwr-test-sshd-host -f "$SSHD_DIR/ssh_host_ed25519_key"
  [ -s "$SSHD_DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "$SSHD_USER@lwr-tests" -f "$SSHD_DIR/id_ed25519"
  chmod 0600 "$SSHD_DIR/ssh_host_ed25519_key" "$SSHD_DIR/id_ed25519"
  id "$SSHD_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$SSHD_USER"
  # with UsePAM no, sshd refuses a locked account ("!") even for key logins; "*" = no password, not locked
  usermod -p '*' "$SSHD_USER"
  local home group; home=$(getent passwd "$SSHD_USER" | cut -d: -f6); group=$(id -gn "$SSHD_USER")
  install -d -m 0700 -o "$SSHD_USER" -g "$group" "$home/.ssh"
  grep -qxF "$(cat "$SSHD_DIR/id_ed25519.pub")" "$home/.ssh/authorized_keys" 2>/dev/null \
    || cat "$SSHD_DIR/id_ed25519.pub" >>"$home/.ssh/authorized_keys"
  chown "$SSHD_USER:$group" "$home/.ssh/authorized_keys"; chmod 0600 "$home/.ssh/authorized_keys"
  install -d -m 0755 "$SSHD_DIR/authorized_keys"
  install -m 0644 "$SSHD_DIR/id_ed25519.pub" "$SSHD_DIR/authorized_keys/root"
  cat >"$SSHD_DIR/sshd_config.new" <<CONF
# private sshd for lwr's tests (written by .ci/backends.sh), loopback only
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/ssh_host_ed25519_key
PidFile $SSHD_PIDFILE
# the second location lets root log in with the test key without touching root's own ~/.ssh
AuthorizedKeysFile .ssh/authorized_keys $SSHD_DIR/authorized_keys/%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes yes
X11Forwarding no
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 100:30:200
MaxSessions 50
Subsystem sftp internal-sftp
LogLevel VERBOSE
CONF
  /usr/sbin/sshd -t -f "$SSHD_DIR/sshd_config.new"
  if ! cmp -s "$SSHD_DIR/sshd_config.new" "$SSHD_DIR/sshd_config"; then
    mv "$SSHD_DIR/sshd_config.new" "$SSHD_DIR/sshd_config"; stop_pidfile "$SSHD_PIDFILE"
  else
    rm -f "$SSHD_DIR/sshd_config.new"
  fi
  if ! alive "$SSHD_PIDFILE"; then
    log "starting sshd on 127.0.0.1:$SSHD_PORT"
    /usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E "$SSHD_DIR/sshd.log"
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$SSHD_PORT) 2>/dev/null && break; sleep 0.1; done
  fi
}

# ---------------------------------------------------------------------------------------------- users
# lwrjob: a real second unprivileged user that queued_external_drmaa runs jobs as.
JOB_USER=lwrjob

# The helpers the sudoers rule names are installed in a root-owned directory of their own, so the
# rule never points into a checkout (whose parent directories other users may not be able to
# enter). The tests refresh this copy from the checkout before they use it.
LWR_TEST_ROOT=/var/lib/lwr-tests

# The job users' group: the sudoers rule lets lwr act only as its members, and the helpers' settings
# file (root-owned, never from the caller) names it as their allow-list, beside the DRMAA environment.
JOB_GROUP=lwrjobs
HELPER_SETTINGS=/etc/lwr/drmaa_helpers.env

setup_users() {
  id "$JOB_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$JOB_USER"
  getent group "$JOB_GROUP" >/dev/null || groupadd "$JOB_GROUP"
  id -nG "$JOB_USER" | tr ' ' '\n' | grep -qx "$JOB_GROUP" || usermod -aG "$JOB_GROUP" "$JOB_USER"
  install -d -m 0755 -o root -g root /etc/lwr
  local settings; settings=$(mktemp)
  cat >"$settings" <<CONF
# Read by lwr's sudo helpers (scripts/drmaa_helper_common.py); root's, writable by no one else.
SGE_ROOT=$SGE_ROOT
SGE_CELL=$SGE_CELL
DRMAA_LIBRARY_PATH=$DRMAA_LIB
LWR_SUBMIT_USER_GROUPS=$JOB_GROUP
LWR_SUBMIT_USER_MIN_UID=1000
LWR_SUBMIT_USER_MAX_UID=59999
CONF
  cmp -s "$settings" "$HELPER_SETTINGS" || install -m 0644 -o root -g root "$settings" "$HELPER_SETTINGS"
  rm -f "$settings"
  # lwr: an unprivileged service user, so a test can drive queued_external_drmaa through the rule
  id lwr >/dev/null 2>&1 || useradd -r -m -d /var/lib/lwr-service -s /bin/bash lwr
  install -d -m 0755 -o root -g root "$LWR_TEST_ROOT" "$LWR_TEST_ROOT/scripts"
  install -m 0755 -o root -g root "$REPO"/scripts/drmaa_launch "$REPO"/scripts/drmaa_kill \
    "$REPO"/scripts/chown_working_directory "$REPO"/scripts/drmaa_helper_common.py "$LWR_TEST_ROOT/scripts/"
  # The rule README documents, for an lwr service user named "lwr": lwr may run the two DRMAA helpers
  # as the members of $JOB_GROUP and chown_working_directory as root, nothing else, without a password.
  local rule=/etc/sudoers.d/lwr-external-drmaa tmp
  tmp=$(mktemp)
  sed "s#@LWR_ROOT@#$LWR_TEST_ROOT#g" "$REPO/scripts/sudoers.example" >"$tmp"
  if visudo -cqf "$tmp"; then install -m 0440 "$tmp" "$rule"; else log "sudoers rule does not parse"; exit 1; fi
  rm -f "$tmp"
}

start_all() {
  install_pkgs
  slurm_config; start_munge; start_accounting; start_slurm
  start_sge
  start_sshd
  setup_users
}

status_all() {
  local f
  for f in "$MUNGE_PID" "$DBD_PID" "$CTLD_PID" "$SLURMD_PID" "$QMASTER_PID" "$EXECD_PID" "$SSHD_PIDFILE"; do
    if alive "$f"; then echo "$f: running pid $(cat "$f")"; else echo "$f: not running"; fi
  done
}

cmd=${1:-start}
case "$cmd" in
  start)  start_all ;;
  status) status_all ;;
  stop)   for f in "$SSHD_PIDFILE" "$EXECD_PID" "$QMASTER_PID" "$SLURMD_PID" "$CTLD_PID" "$DBD_PID" "$MUNGE_PID"; do stop_pidfile "$f"; done ;;
  env)    echo "export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL DRMAA_LIBRARY_PATH=$DRMAA_LIB GLIBC_TUNABLES=glibc.rtld.optional_static_tls=65536" ;;
  *) echo "usage: $0 [start|status|stop|env]" >&2; exit 2 ;;
esac
