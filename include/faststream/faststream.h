/*
 * faststream/faststream.h - everything an application needs: include this
 * one header.
 */
#ifndef FASTSTREAM_FASTSTREAM_H
#define FASTSTREAM_FASTSTREAM_H

#include "faststream/common.h"
#include "faststream/metrics.h"
#include "faststream/exposition.h"
#include "faststream/dashboard.h"
#include "faststream/http.h"
#include "faststream/message.h"
#include "faststream/subscriber.h"
#include "faststream/publisher.h"
#include "faststream/middleware.h"
#include "faststream/broker.h"
#include "faststream/memory.h"
#include "faststream/app.h"
#include "faststream/prometheus.h"
/* Broker adapters: declarations only; link the adapter library to use one. */
#include "faststream/redis.h"

#endif /* FASTSTREAM_FASTSTREAM_H */
