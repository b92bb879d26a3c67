//! The router's command line, written by the maelstrom target:
//!
//! ```text
//! maelstrom-router --node n1 --node-ids n1,n2,n3 --peer n1=10.77.0.2:7300 --peer ...
//!     [--services-at n1] --peer-listen 10.77.0.2:7300 --client-listen 10.77.0.2:7301
//!     [--journal PATH] --log PATH [--seed N] [--topology JSON] [--env K=V ...]
//!     [--init-timeout-ms N] -- PROGRAM [ARG ...]
//! ```

use super::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Renders `cfg` as the command line [`parse`] reads (without the program name).
pub fn render(cfg: &Config) -> Vec<String> {
    let mut out = vec![
        "--node".to_string(),
        cfg.node.clone(),
        "--node-ids".into(),
        cfg.node_ids.join(","),
    ];
    let mut peers: Vec<_> = cfg.peers.iter().collect();
    peers.sort();
    for (n, a) in peers {
        out.extend(["--peer".into(), format!("{n}={a}")]);
    }
    if let Some(s) = &cfg.services_at {
        out.extend(["--services-at".into(), s.clone()]);
    }
    out.extend([
        "--peer-listen".into(),
        cfg.peer_listen.to_string(),
        "--client-listen".into(),
        cfg.client_listen.to_string(),
        "--log".into(),
        cfg.log.display().to_string(),
        "--seed".into(),
        cfg.seed.to_string(),
        "--init-timeout-ms".into(),
        cfg.init_timeout.as_millis().to_string(),
    ]);
    if let Some(j) = &cfg.journal {
        out.extend(["--journal".into(), j.display().to_string()]);
    }
    if let Some(t) = &cfg.topology {
        out.extend(["--topology".into(), t.to_string()]);
    }
    for (k, v) in &cfg.env {
        out.extend(["--env".into(), format!("{k}={v}")]);
    }
    out.push("--".into());
    out.push(cfg.program.display().to_string());
    out.extend(cfg.args.iter().cloned());
    out
}

/// Reads a router command line (without the program name); errors say which flag is wrong.
pub fn parse(args: &[String]) -> Result<Config, String> {
    let mut node = None;
    let mut node_ids = None;
    let mut peers = HashMap::new();
    let mut services_at = None;
    let mut peer_listen = None;
    let mut client_listen = None;
    let mut journal = None;
    let mut log = None;
    let mut seed = 0u64;
    let mut topology = None;
    let mut env = Vec::new();
    let mut init_timeout = Duration::from_secs(10);
    let mut i = 0;
    let addr = |flag: &str, v: &str| -> Result<SocketAddr, String> {
        v.parse()
            .map_err(|_| format!("{flag} needs an IP:PORT address, not {v:?}"))
    };
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--" {
            i += 1;
            break;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{flag} needs a value"))?
            .as_str();
        match flag {
            "--node" => node = Some(value.to_string()),
            "--node-ids" => {
                node_ids = Some(value.split(',').map(str::to_string).collect::<Vec<_>>())
            }
            "--peer" => {
                let (n, a) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--peer takes NODE=IP:PORT, not {value:?}"))?;
                peers.insert(n.to_string(), addr("--peer", a)?);
            }
            "--services-at" => services_at = Some(value.to_string()),
            "--peer-listen" => peer_listen = Some(addr(flag, value)?),
            "--client-listen" => client_listen = Some(addr(flag, value)?),
            "--journal" => journal = Some(PathBuf::from(value)),
            "--log" => log = Some(PathBuf::from(value)),
            "--seed" => {
                seed = value
                    .parse()
                    .map_err(|_| format!("--seed needs an integer, not {value:?}"))?
            }
            "--topology" => {
                topology = Some(
                    serde_json::from_str(value)
                        .map_err(|e| format!("--topology needs JSON ({e})"))?,
                )
            }
            "--env" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--env takes NAME=VALUE, not {value:?}"))?;
                env.push((k.to_string(), v.to_string()));
            }
            "--init-timeout-ms" => {
                init_timeout =
                    Duration::from_millis(value.parse().map_err(|_| {
                        format!("--init-timeout-ms needs an integer, not {value:?}")
                    })?)
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
        i += 2;
    }
    let program = args
        .get(i)
        .ok_or("the node program is missing: give it after `--`")?;
    let node: String = node.ok_or("--node is required")?;
    let node_ids = node_ids.unwrap_or_else(|| vec![node.clone()]);
    if !node_ids.contains(&node) {
        return Err(format!(
            "--node {node} is not one of --node-ids {}",
            node_ids.join(",")
        ));
    }
    Ok(Config {
        node,
        node_ids,
        peers,
        services_at,
        peer_listen: peer_listen.ok_or("--peer-listen is required")?,
        client_listen: client_listen.ok_or("--client-listen is required")?,
        journal,
        log: log.ok_or("--log is required")?,
        seed,
        topology,
        program: PathBuf::from(program),
        args: args[i + 1..].to_vec(),
        env,
        init_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_command_line_parses_back() {
        let cfg = Config {
            node: "n2".into(),
            node_ids: vec!["n1".into(), "n2".into()],
            peers: [("n1".to_string(), "10.0.0.2:7300".parse().unwrap())].into(),
            services_at: Some("n1".into()),
            peer_listen: "10.0.0.3:7300".parse().unwrap(),
            client_listen: "10.0.0.3:7301".parse().unwrap(),
            journal: Some("/j".into()),
            log: "/l".into(),
            seed: 9,
            topology: Some(serde_json::json!({"n1": ["n2"]})),
            program: "/bin/node".into(),
            args: vec!["--flag".into(), "--".into()],
            env: vec![("A".into(), "b=c".into())],
            init_timeout: Duration::from_millis(1500),
        };
        let back = parse(&render(&cfg)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{cfg:?}"));
        assert!(parse(&["--node".into()])
            .unwrap_err()
            .contains("--node needs a value"));
        assert!(
            parse(&["--node".into(), "n1".into(), "--".into(), "x".into()])
                .unwrap_err()
                .contains("--peer-listen")
        );
    }
}
