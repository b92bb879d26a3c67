"""A grow-only set replicated by gossip, shared by broadcast.py and g_set.py.

Every element a node learns is gossiped to its neighbours until each neighbour has
acknowledged it, so elements cross partitions once they heal. Neighbours are the
`topology` the workload sends (all other nodes when there is none). State is in memory
only: a killed node forgets what it knew."""

import threading


class GossipSet:
    def __init__(self, node, every=0.1, batch=500):
        self.node = node
        self.lock = threading.Lock()
        self.elements = set()
        self.neighbours = []
        self.known = {}  # neighbour -> elements it is known to have
        self.batch = batch
        node.on("topology", self._on_topology)
        node.on("gossip", self._on_gossip)
        node.every(every, self._gossip)

    def add(self, elements):
        with self.lock:
            self.elements.update(elements)

    def read(self):
        with self.lock:
            return sorted(self.elements)

    def _on_topology(self, msg):
        with self.lock:
            self.neighbours[:] = msg["body"]["topology"].get(self.node.node_id, [])
        self.node.reply(msg, {"type": "topology_ok"})

    def _on_gossip(self, msg):
        self.add(msg["body"]["elements"])
        self.node.reply(msg, {"type": "gossip_ok", "elements": msg["body"]["elements"]})

    def _gossip(self):
        me = self.node.node_id
        with self.lock:
            peers = list(self.neighbours) or [n for n in self.node.node_ids if n != me]
            batches = {p: sorted(self.elements - self.known.get(p, set())) for p in peers}
        for peer, batch in batches.items():
            if not batch:
                continue

            def acked(reply, peer=peer):
                with self.lock:
                    self.known.setdefault(peer, set()).update(reply["body"]["elements"])

            self.node.rpc(peer, {"type": "gossip", "elements": batch[: self.batch]}, acked)
