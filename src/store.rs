//! The store: run directories under `store/<target>-<workload>-<nemesis>/<timestamp>/`.
