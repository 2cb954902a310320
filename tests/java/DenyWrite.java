// Kafka ACLs through the real Java Admin client (kafka-clients from the broker's classpath):
// lets principal User:cx describe and read TOPIC but denies it WRITE. Run as a single-file
// program against a PLAINTEXT (super user) listener of a broker with an authorizer:
//   java -cp "$CXP_KAFKA_LIB/*" tests/java/DenyWrite.java BROKERS TOPIC
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class DenyWrite {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        ResourcePattern topic = new ResourcePattern(ResourceType.TOPIC, args[1], PatternType.LITERAL);
        try (Admin admin = Admin.create(p)) {
            admin.createAcls(List.of(
                new AclBinding(topic, new AccessControlEntry("User:cx", "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW)),
                new AclBinding(topic, new AccessControlEntry("User:cx", "*", AclOperation.READ, AclPermissionType.ALLOW)),
                new AclBinding(topic, new AccessControlEntry("User:cx", "*", AclOperation.WRITE, AclPermissionType.DENY))
            )).all().get();
        }
        System.out.println("ok");
    }
}
