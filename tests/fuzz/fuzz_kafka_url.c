/* The kafka adapter's URL parsing (fs_kafka_broker_new): see fuzz_broker_url.h. */
#include "faststream/kafka.h"

#define FUZZ_BROKER_NEW fs_kafka_broker_new
#include "fuzz_broker_url.h"
