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
  /** The NameNode's configuration, kept to start it again on the same ports and storage. */
  private final Configuration nameNodeConf;
  private NameNode nameNode;
  private final List<DataNode> dataNodes;
  /** DataNodes stopped for good by {@link #stopDataNode}: no longer counted as live. */
  private final boolean[] stoppedDataNodes;

  private LocalDfs(String host, Configuration nameNodeConf, NameNode nameNode, List<DataNode> dataNodes) {
    this.host = host;
    this.nameNodeConf = nameNodeConf;
    this.nameNode = nameNode;
    this.dataNodes = dataNodes;
    this.stoppedDataNodes = new boolean[dataNodes.size()];
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
    LocalDfs dfs = new LocalDfs(host, conf, nameNode, dataNodes);
    dfs.waitReady();
    return dfs;
  }

  synchronized String uri() {
    return "hdfs://" + host + ":" + nameNode.getNameNodeAddress().getPort();
  }

  /**
   * Stops the NameNode, keeps it down {@code downMillis}, starts it again from the same storage
   * on the same ports (what MiniDFSCluster.restartNameNode does), and returns once it is out of
   * safe mode with every running DataNode registered again. DataNodes keep running throughout:
   * clients that already hold block locations go on reading from them.
   */
  synchronized void restartNameNode(long downMillis) throws IOException, InterruptedException {
    nameNode.stop();
    nameNode.join();
    Thread.sleep(downMillis);
    // The storage is already formatted: no format here, the namespace and blocks are kept.
    nameNode = NameNode.createNameNode(new String[0], nameNodeConf);
    waitReady();
  }

  /**
   * Shuts DataNode {@code index} down for good, as a machine that dies would: it tells the
   * NameNode nothing, so the NameNode keeps handing out its replicas until it misses heartbeats
   * long enough (10 minutes and more by default); readers have to skip it themselves.
   */
  synchronized void stopDataNode(int index) {
    if (index < 0 || index >= dataNodes.size()) {
      throw new IllegalArgumentException(
          "no DataNode " + index + " (there are " + dataNodes.size() + ")");
    }
    if (stoppedDataNodes[index]) {
      throw new IllegalStateException("DataNode " + index + " is already stopped");
    }
    dataNodes.get(index).shutdown();
    stoppedDataNodes[index] = true;
  }

  private int runningDataNodes() {
    int running = 0;
    for (boolean stopped : stoppedDataNodes) {
      running += stopped ? 0 : 1;
    }
    return running;
  }

  /**
   * Out of safe mode, every running DataNode registered and fully started (a stopped one may
   * still count as live: the NameNode has not noticed yet).
   */
  private void waitReady() throws IOException, InterruptedException {
    long deadline = System.currentTimeMillis() + READY_TIMEOUT_MS;
    int expected = runningDataNodes();
    while (true) {
      boolean started = true;
      for (int i = 0; i < dataNodes.size(); i++) {
        started &= stoppedDataNodes[i] || dataNodes.get(i).isDatanodeFullyStarted();
      }
      if (started
          && nameNode.isActiveState()
          && !nameNode.isInSafeMode()
          && nameNode.getNamesystem().getNumLiveDataNodes() >= expected) {
        return;
      }
      if (System.currentTimeMillis() > deadline) {
        throw new IOException("HDFS not ready after " + READY_TIMEOUT_MS + " ms");
      }
      Thread.sleep(100);
    }
  }

  synchronized void shutdown() {
    for (int i = 0; i < dataNodes.size(); i++) {
      if (!stoppedDataNodes[i]) {
        dataNodes.get(i).shutdown();
      }
    }
    nameNode.stop();
    nameNode.join();
  }
}
