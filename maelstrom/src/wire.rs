//! How a message travels between routers: one UDP datagram per message, an 8-byte
//! big-endian journal id followed by the message's JSON (no newline).
//!
//! Why UDP: a datagram the network drops (a partition's DROP rule, packet loss) is gone
//! for good, exactly as Maelstrom drops a message it cannot deliver. Over TCP the kernel
//! would keep a partitioned message in its send buffer and retransmit it after the heal,
//! delivering it late; avoiding that needs per-message deadlines that compare clocks of
//! different machines. UDP also needs no connections to re-establish after a restart.
//! The cost: a message must fit one datagram ([`MAX_MESSAGE_BYTES`]).

/// The largest message that fits one UDP datagram over IPv4 with our 8-byte header.
pub const MAX_MESSAGE_BYTES: usize = 65_507 - 8;

/// The datagram carrying `json` under journal id `id`.
pub fn encode(id: u64, json: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(json);
}

/// The journal id and JSON of a datagram; `None` when it is too short to be ours.
pub fn decode(datagram: &[u8]) -> Option<(u64, &[u8])> {
    let (id, json) = datagram.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*id), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip() {
        let mut buf = Vec::new();
        encode(0x0102_0304_0506_0708, b"{}", &mut buf);
        assert_eq!(decode(&buf), Some((0x0102_0304_0506_0708, &b"{}"[..])));
        assert_eq!(decode(b"short"), None);
    }
}
