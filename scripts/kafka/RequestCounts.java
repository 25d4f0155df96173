// The requests a running Apache Kafka node has served, by type: the cumulative `Count` of Kafka's
// `kafka.network:type=RequestMetrics,name=RequestsPerSec,request=<type>,version=<v>` meters, summed
// over versions, one "TYPE COUNT" line each. The benchmarks read it before and after a load, so the
// broker's CPU can be put per request (scripts/bench-stack.sh).
//
//   java scripts/kafka/RequestCounts.java BROKER_PID     (a single-file source program: JDK 11+)
//
// It attaches to the broker's JVM (same user) and starts its local JMX agent if none runs, so the
// broker needs no JMX port. Exits 1 with a message on stderr when it cannot attach or read.
import com.sun.tools.attach.VirtualMachine;
import java.util.Map;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class RequestCounts {
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: java RequestCounts.java BROKER_PID");
            System.exit(2);
        }
        try {
            VirtualMachine vm = VirtualMachine.attach(args[0]);
            String address;
            try {
                address = vm.startLocalManagementAgent();
            } finally {
                vm.detach();
            }
            try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
                MBeanServerConnection server = connector.getMBeanServerConnection();
                ObjectName pattern = new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*");
                Map<String, Long> counts = new TreeMap<>();
                for (ObjectName name : server.queryNames(pattern, null)) {
                    String request = name.getKeyProperty("request");
                    long count = ((Number) server.getAttribute(name, "Count")).longValue();
                    counts.merge(request, count, Long::sum);
                }
                for (Map.Entry<String, Long> e : counts.entrySet()) {
                    System.out.println(e.getKey() + " " + e.getValue());
                }
            }
        } catch (Exception e) {
            System.err.println("RequestCounts: cannot read the broker's request metrics (pid " + args[0] + "): " + e);
            System.exit(1);
        }
    }
}
