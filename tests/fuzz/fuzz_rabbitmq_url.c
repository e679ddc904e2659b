/* The rabbitmq adapter's URL parsing (fs_rabbitmq_broker_new): see fuzz_broker_url.h. */
#include "faststream/rabbitmq.h"

#define FUZZ_BROKER_NEW fs_rabbitmq_broker_new
#include "fuzz_broker_url.h"
