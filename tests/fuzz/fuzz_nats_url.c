/* The nats adapter's URL parsing (fs_nats_broker_new): see fuzz_broker_url.h. */
#include "faststream/nats.h"

#define FUZZ_BROKER_NEW fs_nats_broker_new
#include "fuzz_broker_url.h"
