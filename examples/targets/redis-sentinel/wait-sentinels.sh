#!/bin/sh
# Waits until every replica has synced with the master and every Sentinel sees all the
# others and every replica (they find each other through the master), so faults start
# against a fully formed deployment.
#   wait-sentinels.sh IP...
set -u
others=$(($# - 1))
i=0
while [ $i -lt 300 ]; do
    ready=0
    for ip in "$@"; do
        info=$(timeout 2 redis-cli -h "$ip" -p 26379 sentinel master mymaster 2>/dev/null)
        sentinels=$(echo "$info" | grep -A1 -x num-other-sentinels | tail -n 1)
        replicas=$(echo "$info" | grep -A1 -x num-slaves | tail -n 1)
        link=$(timeout 2 redis-cli -h "$ip" -p 6379 info replication 2>/dev/null | tr -d '\r')
        synced=no
        echo "$link" | grep -qx "master_link_status:up" && synced=yes
        echo "$link" | grep -qx "connected_slaves:$others" && synced=yes
        [ "$sentinels" = "$others" ] && [ "$replicas" = "$others" ] && [ $synced = yes ] &&
            ready=$((ready + 1))
    done
    [ $ready -eq $# ] && exit 0
    sleep 0.2
    i=$((i + 1))
done
echo "the replicas did not sync or the Sentinels did not all see each other within 60 s" >&2
exit 1
