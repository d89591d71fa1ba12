package dev.courier.minidfs;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.DFSConfigKeys;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import sun.misc.Signal;

/**
 * Starts a small HDFS (one NameNode, N DataNodes, see {@link LocalDfs}) on
 * fixed ports of one address, prints one line {@code MINIDFS READY <uri>} on
 * stdout once it accepts reads and writes, and shuts it down on stdin EOF
 * (unless {@code --no-stdin}) or on SIGTERM/SIGINT.
 *
 * <p>While it watches stdin, each line there is a fault to inject (see {@link Control}),
 * answered with one line on stdout: {@code OK <command>} once done, or
 * {@code ERR <command>: <reason>}. Tests that own an instance drive it this way.
 */
public final class Main {
  /** The line prefix scripts and tests wait for. */
  public static final String READY_PREFIX = "MINIDFS READY ";

  private static final String USAGE =
      "usage: Main --data-dir DIR [--host 127.0.0.1] [--port 9000] [--http-port 9870]"
          + " [--datanodes 1] [--no-stdin] [--conf key=value]...";

  private final LocalDfs cluster;
  private boolean stopped;

  private Main(LocalDfs cluster) {
    this.cluster = cluster;
  }

  public static void main(String[] args) throws Exception {
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      System.err.println(USAGE);
      System.exit(2);
      return;
    }

    LocalDfs cluster;
    try {
      cluster = start(options);
    } catch (IOException e) {
      e.printStackTrace();
      System.exit(1);
      return;
    }
    Main main = new Main(cluster);
    CountDownLatch done = new CountDownLatch(1);

    // SIGTERM / SIGINT: stop from the main thread, not from a JVM shutdown
    // hook (Hadoop's own hook manager refuses changes once shutdown began).
    for (String name : new String[] {"TERM", "INT"}) {
      Signal.handle(new Signal(name), signal -> {
        System.err.println("minidfs: SIG" + signal.getName() + ", shutting down");
        done.countDown();
      });
    }
    // READY first: a command's answer never comes before it.
    System.out.println(READY_PREFIX + cluster.uri());
    System.out.flush();
    if (options.watchStdin) {
      Thread watcher = new Thread(() -> {
        Control.serve(cluster, System.in, System.out);
        System.err.println("minidfs: stdin closed, shutting down");
        done.countDown();
      }, "minidfs-stdin");
      watcher.setDaemon(true);
      watcher.start();
    }

    done.await();
    main.stop();
    System.exit(0);
  }

  private static LocalDfs start(Options options) throws IOException, InterruptedException {
    File dataDir = new File(options.dataDir).getAbsoluteFile();
    Configuration conf = new HdfsConfiguration();
    // Any user may write anywhere: tests run as whoever runs them.
    conf.setBoolean(DFSConfigKeys.DFS_PERMISSIONS_ENABLED_KEY, false);
    conf.setInt(DFSConfigKeys.DFS_REPLICATION_KEY, 1);
    // Keep the default block size, but let tests choose tiny blocks per file
    // so that multi-block reads can be exercised with small fixtures.
    conf.setLong(DFSConfigKeys.DFS_NAMENODE_MIN_BLOCK_SIZE_KEY, 4096);
    conf.set("hadoop.tmp.dir", new File(dataDir, "tmp").getPath());
    for (String[] kv : options.conf) {
      conf.set(kv[0], kv[1]);
    }
    return LocalDfs.start(conf, dataDir, options.host, options.port, options.httpPort, options.dataNodes);
  }

  private synchronized void stop() {
    if (stopped) {
      return;
    }
    stopped = true;
    System.err.println("minidfs: stopping");
    cluster.shutdown();
    System.err.println("minidfs: stopped");
  }

  /** Command-line options. */
  private static final class Options {
    String dataDir;
    String host = "127.0.0.1";
    int port = 9000;
    int httpPort = 9870;
    int dataNodes = 1;
    boolean watchStdin = true;
    final List<String[]> conf = new ArrayList<>();

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i++) {
        String arg = args[i];
        switch (arg) {
          case "--data-dir" -> o.dataDir = value(args, ++i, arg);
          case "--host" -> o.host = value(args, ++i, arg);
          case "--port" -> o.port = intValue(args, ++i, arg);
          case "--http-port" -> o.httpPort = intValue(args, ++i, arg);
          case "--datanodes" -> o.dataNodes = intValue(args, ++i, arg);
          case "--no-stdin" -> o.watchStdin = false;
          case "--conf" -> {
            String kv = value(args, ++i, arg);
            int eq = kv.indexOf('=');
            if (eq <= 0) {
              throw new IllegalArgumentException("--conf expects key=value, got " + kv);
            }
            o.conf.add(new String[] {kv.substring(0, eq), kv.substring(eq + 1)});
          }
          default -> throw new IllegalArgumentException("unknown argument " + arg);
        }
      }
      if (o.dataDir == null) {
        throw new IllegalArgumentException("--data-dir is required");
      }
      return o;
    }

    private static String value(String[] args, int i, String flag) {
      if (i >= args.length) {
        throw new IllegalArgumentException(flag + " needs a value");
      }
      return args[i];
    }

    private static int intValue(String[] args, int i, String flag) {
      String v = value(args, i, flag);
      try {
        return Integer.parseInt(v);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(flag + " expects a number, got " + v);
      }
    }
  }
}
