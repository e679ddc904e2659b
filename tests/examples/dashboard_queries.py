"""The panel queries of the FastStream Grafana dashboard (grafana.com ID 22130).

Copied verbatim from /work/shared/spec/DASHBOARD.md (the dashboard's own
PromQL, with its template variables left in), together with the values that
spec says to substitute when checking a service against the dashboard.
"""

# Dashboard variable -> value for a check (DASHBOARD.md, "value for a check").
VARIABLES = {
    "${metrics_prefix}": "faststream",
    "$app_name": ".*",
    "$handler": ".*",
    "$destination": ".*",
    "$__range": "5m",
}

# (panel title, query template), in the order the spec lists them.
PANELS = [
    ("Total messages published",
     'sum(increase({app_name=~"$app_name", __name__=~"${metrics_prefix}_published_messages_total", destination=~"$destination"} [$__range]))'),
    ("Messages published",
     'increase({app_name=~"$app_name", __name__=~"${metrics_prefix}_published_messages_total", status="success", destination=~"$destination"} [$__range])'),
    ("Total messages received",
     'sum(increase({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_messages_total", handler=~"$handler"} [$__range]))'),
    ("Total messages processed",
     'sum(increase({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", handler=~"$handler"} [$__range]))'),
    ("Messages processed",
     'increase({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", status="acked", handler=~"$handler"} [$__range])'),
    ("Publish exceptions",
     'sum(increase({app_name=~"$app_name", __name__=~"${metrics_prefix}_published_messages_exceptions_total", destination=~"$destination"} [$__range]))'),
    ("Publish average duration",
     '{app_name=~"$app_name", __name__=~"${metrics_prefix}_published_messages_duration_seconds_sum", destination=~"$destination"} / {app_name=~"$app_name", __name__=~"${metrics_prefix}_published_messages_duration_seconds_count", destination=~"$destination"}'),
    ("Process exceptions",
     'sum(increase({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_exceptions_total", handler=~"$handler"} [$__range]))'),
    ("Messages in progress",
     'sum({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_messages_in_process", handler=~"$handler"})'),
    ("Process average duration",
     '{app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_duration_seconds_sum", handler=~"$handler"} / {app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_duration_seconds_count", handler=~"$handler"}'),
    ("Publish per sec",
     'rate({app_name=~"$app_name", __name__=~"${metrics_prefix}_published_messages_total", destination=~"$destination"} [1m])'),
    ("Process per sec",
     'rate({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", handler=~"$handler"} [1m])'),
    ("Messages in process",
     '{app_name=~"$app_name", __name__=~"${metrics_prefix}_received_messages_in_process", handler=~"$handler"}'),
    ("Publish duration [PR 99]",
     'histogram_quantile(.99,sum(rate({app_name=~"$app_name", __name__=~"${metrics_prefix}_published_messages_duration_seconds_bucket", destination=~"$destination"} [1m])) by(destination, le))'),
    ("Process duration [PR 99]",
     'histogram_quantile(.99,sum(rate({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_duration_seconds_bucket", handler=~"$handler"} [1m])) by(handler, le))'),
    ("Received message size [PR 99]",
     'histogram_quantile(.99,sum(rate({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_messages_size_bytes_bucket", handler=~"$handler"} [1m])) by(handler, le))'),
    ("Percent of acked messages",
     'sum by(handler) ({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", status="acked", handler=~"$handler"}) / sum by(handler) ({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", handler=~"$handler"})'),
    ("Percent of error messages",
     'sum by(handler) ({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", status="error", handler=~"$handler"}) / sum by(handler) ({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", handler=~"$handler"})'),
    ("Percent of nacked, rejected, skipped messages",
     'sum by(handler) ({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", status=~"nacked|rejected|skipped", handler=~"$handler"}) / sum by(handler) ({app_name=~"$app_name", __name__=~"${metrics_prefix}_received_processed_messages_total", handler=~"$handler"})'),
]


def expand(template, variables=VARIABLES):
    """Substitute the dashboard variables the way Grafana does (longest first)."""
    out = template
    for name in sorted(variables, key=len, reverse=True):
        out = out.replace(name, variables[name])
    if "$" in out:
        raise ValueError("unsubstituted variable in: " + out)
    return out
