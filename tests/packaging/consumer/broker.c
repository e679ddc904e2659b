/*
 * A program outside the tree that uses the installed core and every adapter
 * it was built with (FS_HAVE_NAME): each registers its URL scheme and makes
 * a broker for a URL of that scheme (nothing connects), so each library and
 * what it needs are linked in.
 */
#include <faststream/faststream.h>
#include <faststream/memory.h>
#ifdef FS_HAVE_REDIS
#include <faststream/redis.h>
#endif
#ifdef FS_HAVE_KAFKA
#include <faststream/kafka.h>
#endif
#ifdef FS_HAVE_RABBITMQ
#include <faststream/rabbitmq.h>
#endif
#ifdef FS_HAVE_NATS
#include <faststream/nats.h>
#endif
#ifdef FS_HAVE_MQTT
#include <faststream/mqtt.h>
#endif
#include <stdio.h>

static const struct {
    const char *name;
    int (*reg)(void);
    const char *url;
} adapters[] = {
    {"memory", fs_memory_register, "memory://"},
#ifdef FS_HAVE_REDIS
    {"redis", fs_redis_register, "redis://127.0.0.1:1/0"},
#endif
#ifdef FS_HAVE_KAFKA
    {"kafka", fs_kafka_register, "kafka://127.0.0.1:1"},
#endif
#ifdef FS_HAVE_RABBITMQ
    {"rabbitmq", fs_rabbitmq_register, "amqp://127.0.0.1:1/"},
#endif
#ifdef FS_HAVE_NATS
    {"nats", fs_nats_register, "nats://127.0.0.1:1"},
#endif
#ifdef FS_HAVE_MQTT
    {"mqtt", fs_mqtt_register, "mqtt://127.0.0.1:1"},
#endif
};

int main(void)
{
    int n = 0;
    for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++) {
        fs_broker *b = NULL;
        if (adapters[i].reg() != FS_OK || fs_broker_new(adapters[i].url, NULL, &b) != FS_OK) {
            fprintf(stderr, "consumer: %s: %s\n", adapters[i].name, fs_last_error());
            return 1;
        }
        fs_broker_free(b);
        n++;
    }
    printf("consumer_adapters %d\n", n);
    return 0;
}
