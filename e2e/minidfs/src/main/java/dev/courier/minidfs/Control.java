package dev.courier.minidfs;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * The control channel of an instance a test owns: one command a line, run one at a time, each
 * answered with one line, {@code OK <command>} or {@code ERR <command>: <reason>}.
 *
 * <ul>
 *   <li>{@code restart-namenode <seconds>}: stop the NameNode, keep it down that long (a
 *       decimal), start it again on the same ports and storage; answered once it serves again.
 *   <li>{@code stop-datanode <index>}: shut DataNode {@code index} (from 0) down for good.
 *   <li>{@code ping}: answered at once (the channel works).
 * </ul>
 */
final class Control {
  private Control() {}

  /** Runs commands from {@code in} until it ends (EOF or a broken stream). */
  static void serve(LocalDfs cluster, InputStream in, PrintStream out) {
    BufferedReader lines = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
    while (true) {
      String line;
      try {
        line = lines.readLine();
      } catch (IOException e) {
        return; // a broken stdin counts as closed
      }
      if (line == null) {
        return;
      }
      String command = line.trim();
      if (command.isEmpty()) {
        continue;
      }
      String answer;
      try {
        run(cluster, command);
        answer = "OK " + command;
      } catch (Exception e) {
        e.printStackTrace();
        answer = "ERR " + command + ": " + String.valueOf(e.getMessage()).replace('\n', ' ');
      }
      System.err.println("minidfs: " + answer);
      // stdout is the test's pipe: the READY line and answers, nothing else.
      synchronized (out) {
        out.println(answer);
        out.flush();
      }
    }
  }

  private static void run(LocalDfs cluster, String command) throws Exception {
    String[] words = command.split("\\s+");
    switch (words[0]) {
      case "ping" -> expectArgs(words, 0);
      case "restart-namenode" -> {
        expectArgs(words, 1);
        double seconds = Double.parseDouble(words[1]);
        if (!(seconds >= 0 && seconds <= 600)) {
          throw new IllegalArgumentException("seconds must be within 0..600, got " + words[1]);
        }
        System.err.println("minidfs: restarting the NameNode, down " + seconds + " s");
        cluster.restartNameNode(Math.round(seconds * 1000));
      }
      case "stop-datanode" -> {
        expectArgs(words, 1);
        int index = Integer.parseInt(words[1]);
        System.err.println("minidfs: stopping DataNode " + index + " for good");
        cluster.stopDataNode(index);
      }
      default -> throw new IllegalArgumentException("unknown command " + words[0]);
    }
  }

  private static void expectArgs(String[] words, int count) {
    if (words.length - 1 != count) {
      throw new IllegalArgumentException(words[0] + " takes " + count + " argument(s)");
    }
  }
}
