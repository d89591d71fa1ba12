package dev.courier.minidfs;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.CommonConfigurationKeysPublic;
import org.apache.hadoop.hdfs.DFSConfigKeys;
import org.apache.hadoop.hdfs.server.datanode.DataNode;
import org.apache.hadoop.hdfs.server.namenode.NameNode;
import org.apache.hadoop.metrics2.lib.DefaultMetricsSystem;

/**
 * One NameNode and N DataNodes in this JVM, every address on one host.
 *
 * <p>MiniDFSCluster writes 127.0.0.1 into the NameNode's address whatever the
 * configuration says, so its DataNodes register (and are handed to clients)
 * as 127.0.0.1, which pods cannot reach. This starts the same daemons from
 * the same jars with every address on {@code host}: the DataNodes connect to
 * the NameNode there, so that is the address the NameNode hands out.
 */
final class LocalDfs {
  private static final long READY_TIMEOUT_MS = 120_000;

  private final String host;
  private final NameNode nameNode;
  private final List<DataNode> dataNodes;

  private LocalDfs(String host, NameNode nameNode, List<DataNode> dataNodes) {
    this.host = host;
    this.nameNode = nameNode;
    this.dataNodes = dataNodes;
  }

  static LocalDfs start(Configuration base, File dataDir, String host, int port, int httpPort,
      int dataNodeCount) throws IOException, InterruptedException {
    // Formatting and then starting a NameNode in one JVM registers its metrics
    // twice; this mode (MiniDFSCluster's too) allows that.
    DefaultMetricsSystem.setMiniClusterMode(true);
    Configuration conf = new Configuration(base);
    conf.set(CommonConfigurationKeysPublic.FS_DEFAULT_NAME_KEY, "hdfs://" + host + ":" + port);
    conf.set(DFSConfigKeys.DFS_NAMENODE_RPC_ADDRESS_KEY, host + ":" + port);
    conf.set(DFSConfigKeys.DFS_NAMENODE_HTTP_ADDRESS_KEY, host + ":" + httpPort);
    conf.set(DFSConfigKeys.DFS_NAMENODE_NAME_DIR_KEY, new File(dataDir, "name").toURI().toString());
    conf.set(DFSConfigKeys.DFS_NAMENODE_CHECKPOINT_DIR_KEY,
        new File(dataDir, "namesecondary").toURI().toString());
    // A fresh namespace leaves safe mode at once; DataNodes count as dead soon.
    conf.setInt(DFSConfigKeys.DFS_NAMENODE_SAFEMODE_EXTENSION_KEY, 0);
    conf.setInt(DFSConfigKeys.DFS_NAMENODE_SAFEMODE_MIN_DATANODES_KEY, 0);
    conf.setInt(DFSConfigKeys.DFS_HEARTBEAT_INTERVAL_KEY, 1);
    NameNode.format(conf);
    NameNode nameNode = NameNode.createNameNode(new String[0], conf);

    List<DataNode> dataNodes = new ArrayList<>();
    for (int i = 0; i < dataNodeCount; i++) {
      Configuration dn = new Configuration(conf);
      dn.set(DFSConfigKeys.DFS_DATANODE_DATA_DIR_KEY,
          new File(dataDir, "data/data" + i).toURI().toString());
      dn.set(DFSConfigKeys.DFS_DATANODE_ADDRESS_KEY, host + ":0");
      dn.set(DFSConfigKeys.DFS_DATANODE_HTTP_ADDRESS_KEY, host + ":0");
      dn.set(DFSConfigKeys.DFS_DATANODE_IPC_ADDRESS_KEY, host + ":0");
      dn.set(DFSConfigKeys.DFS_DATANODE_HOST_NAME_KEY, host);
      dataNodes.add(DataNode.createDataNode(new String[0], dn));
    }
    LocalDfs dfs = new LocalDfs(host, nameNode, dataNodes);
    dfs.waitReady(dataNodeCount);
    return dfs;
  }

  String uri() {
    return "hdfs://" + host + ":" + nameNode.getNameNodeAddress().getPort();
  }

  /** Out of safe mode, every DataNode registered and fully started. */
  private void waitReady(int dataNodeCount) throws IOException, InterruptedException {
    long deadline = System.currentTimeMillis() + READY_TIMEOUT_MS;
    while (true) {
      boolean started = dataNodes.stream().allMatch(DataNode::isDatanodeFullyStarted);
      if (started
          && !nameNode.isInSafeMode()
          && nameNode.getNamesystem().getNumLiveDataNodes() == dataNodeCount) {
        return;
      }
      if (System.currentTimeMillis() > deadline) {
        throw new IOException("HDFS not ready after " + READY_TIMEOUT_MS + " ms");
      }
      Thread.sleep(100);
    }
  }

  void shutdown() {
    for (DataNode dn : dataNodes) {
      dn.shutdown();
    }
    nameNode.stop();
    nameNode.join();
  }
}
