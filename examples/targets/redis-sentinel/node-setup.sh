#!/bin/sh
# Writes one node's redis.conf and sentinel.conf into its data directory.
#   node-setup.sh NODE IP PRIMARY PRIMARY_IP DATA_DIR NODE...
# The first node starts as the master, the others as its replicas. Both programs rewrite
# their file when Sentinel reconfigures them, so a restarted node keeps the role Sentinel
# last gave it, as on a real deployment.
set -eu
node=$1 ip=$2 primary=$3 primary_ip=$4 data=$5
shift 5
quorum=$(($# / 2 + 1))
mkdir -p "$data"
cat > "$data/redis.conf" <<CONF
port 6379
bind $ip
protected-mode no
dir $data
appendonly yes
repl-diskless-sync-delay 0
CONF
if [ "$node" != "$primary" ]; then
    echo "replicaof $primary_ip 6379" >> "$data/redis.conf"
fi
cat > "$data/sentinel.conf" <<CONF
port 26379
bind $ip
protected-mode no
dir $data
sentinel monitor mymaster $primary_ip 6379 $quorum
sentinel down-after-milliseconds mymaster 2000
sentinel failover-timeout mymaster 6000
sentinel parallel-syncs mymaster 1
CONF
