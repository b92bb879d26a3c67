//! distest-workloads: workload shapes (register, list-append, rw-register, set, ...).
