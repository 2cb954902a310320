// The real Java producer (kafka-clients from the broker's classpath) with its default
// partitioner: reads one key per line on stdin, produces each to the topic, and prints
// "key partition" once acknowledged. Run as a single-file program:
//   java -cp "$CXP_KAFKA_LIB/*" tests/java/JavaProducer.java BROKERS TOPIC < keys
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaProducer {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        List<String> keys = new ArrayList<>();
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String key;
            while ((key = in.readLine()) != null) {
                keys.add(key);
                acks.add(producer.send(new ProducerRecord<>(args[1], key, key)));
            }
            for (int i = 0; i < keys.size(); i++) {
                System.out.println(keys.get(i) + " " + acks.get(i).get().partition());
            }
        }
    }
}
