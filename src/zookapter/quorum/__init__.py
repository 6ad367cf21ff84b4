"""zookapter.quorum: replication (ZooKeeper's quorum peer), built as pure cores.

- config: the ensemble part of zoo.cfg (server.N, group/weight, peerType, limits, myid) and
  the quorum verifiers, with the exact /zookeeper/config text (javamaps: the Java map
  orders that text depends on).
- election_wire: the election channel's bytes (QuorumCnxManager handshake, framing,
  FastLeaderElection notifications).
- election: FastLeaderElection as a sans-I/O state machine (start/step/tick -> actions).
- packets: the leader<->learner (Zab) channel's QuorumPacket and payload codecs.

The Zab peer itself (discovery, sync, broadcast) is still to come; nothing here opens sockets,
reads clocks or starts threads.
"""
