//! The broadcast workload's `topology`: for each node, the neighbours it is told to
//! gossip with (Maelstrom's `--topology`: grid, line, total, tree2, tree3, tree4).

use serde_json::{Map, Value};

/// The names `--topology` accepts.
pub const NAMES: &[&str] = &["grid", "line", "total", "tree2", "tree3", "tree4"];

/// The topology called `name` over `nodes`, as the `topology` field of the message.
pub fn topology(name: &str, nodes: &[String]) -> Result<Value, String> {
    let neighbours: Vec<Vec<usize>> = match name {
        "grid" => grid(nodes.len()),
        "line" => (0..nodes.len())
            .map(|i| {
                let mut n = Vec::new();
                if i > 0 {
                    n.push(i - 1);
                }
                if i + 1 < nodes.len() {
                    n.push(i + 1);
                }
                n
            })
            .collect(),
        "total" => (0..nodes.len())
            .map(|i| (0..nodes.len()).filter(|&j| j != i).collect())
            .collect(),
        "tree2" | "tree" => tree(nodes.len(), 2),
        "tree3" => tree(nodes.len(), 3),
        "tree4" => tree(nodes.len(), 4),
        other => {
            return Err(format!(
                "unknown topology {other:?}; valid topologies are: {}",
                NAMES.join(", ")
            ))
        }
    };
    let mut map = Map::new();
    for (i, ns) in neighbours.into_iter().enumerate() {
        map.insert(
            nodes[i].clone(),
            Value::Array(
                ns.into_iter()
                    .map(|j| Value::String(nodes[j].clone()))
                    .collect(),
            ),
        );
    }
    Ok(Value::Object(map))
}

/// A roughly square grid, row by row: each node sees the nodes above, below, left and
/// right of it.
fn grid(n: usize) -> Vec<Vec<usize>> {
    let side = (n as f64).sqrt().ceil().max(1.0) as usize;
    (0..n)
        .map(|idx| {
            let (i, j) = (idx / side, idx % side);
            let mut out = Vec::new();
            let mut at = |i: isize, j: isize| {
                if i >= 0 && j >= 0 && (j as usize) < side {
                    let k = i as usize * side + j as usize;
                    if k < n {
                        out.push(k);
                    }
                }
            };
            let (i, j) = (i as isize, j as isize);
            at(i + 1, j);
            at(i - 1, j);
            at(i, j + 1);
            at(i, j - 1);
            out
        })
        .collect()
}

/// A tree of branching factor `b` in breadth-first order: node k's parent is
/// `(k - 1) / b`; each node sees its parent and its children.
fn tree(n: usize, b: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|k| {
            let mut out = Vec::new();
            if k > 0 {
                out.push((k - 1) / b);
            }
            out.extend((1..=b).map(|c| k * b + c).filter(|&c| c < n));
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn topologies_are_symmetric_and_connected() {
        for name in NAMES {
            for n in 1..=9 {
                let t = topology(name, &nodes(n)).unwrap();
                let m = t.as_object().unwrap();
                assert_eq!(m.len(), n);
                for (a, ns) in m {
                    for b in ns.as_array().unwrap() {
                        let back = m[b.as_str().unwrap()].as_array().unwrap();
                        assert!(back.contains(&json!(a)), "{name} {n}: {a} -> {b}");
                    }
                }
                // Connected: a walk from n1 reaches every node.
                let mut seen = vec!["n1".to_string()];
                let mut i = 0;
                while i < seen.len() {
                    for b in m[&seen[i]].as_array().unwrap() {
                        let b = b.as_str().unwrap().to_string();
                        if !seen.contains(&b) {
                            seen.push(b);
                        }
                    }
                    i += 1;
                }
                assert_eq!(seen.len(), n, "{name} {n}");
            }
        }
    }

    #[test]
    fn a_grid_of_five_is_two_rows_of_three() {
        let t = topology("grid", &nodes(5)).unwrap();
        assert_eq!(t["n1"], json!(["n4", "n2"]));
        assert_eq!(t["n5"], json!(["n2", "n4"]));
        assert!(topology("ring", &nodes(3)).is_err());
    }
}
