"""zookapter.quorum: replication (ZooKeeper's quorum peer), built as pure cores.

- config: the ensemble part of zoo.cfg (server.N, group/weight, peerType, limits, myid) and
  the quorum verifiers, with the exact /zookeeper/config text (javamaps: the Java map
  orders that text depends on).
- election_wire: the election channel's bytes (QuorumCnxManager handshake, framing,
  FastLeaderElection notifications).
- election: FastLeaderElection as a sans-I/O state machine (start/step/tick -> actions).
- packets: the leader<->learner (Zab) channel's QuorumPacket and payload codecs.
- The Zab core, sans-I/O: peer (QuorumPeer: election + roles, step/tick -> actions),
  zab_events (its events, actions and the shell's obligations), leader + learner_handle
  (discovery, sync, broadcast), learner (follower/observer), syncplan (DIFF/TRUNC/SNAP
  choice), history (committed log, logged/applied zxids).

The cores open no sockets, read no clocks and start no threads; shell.py is the asyncio
shell around them.
"""
