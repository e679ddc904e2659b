#include <faststream/http.h>
#include <faststream/metrics.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    const char *labels[] = {"method", "status"};
    fs_counter_family *requests;
    fs_histogram *latency;
    fs_http_server *srv;
    fs_http_options opts = FS_HTTP_OPTIONS_INIT; /* 127.0.0.1:8000, default registry */
    opts.port = 9100;
    if (fs_counter_family_new(NULL, "requests_total", "Requests by method and status.", 2, labels,
                              &requests) < 0 ||
        fs_histogram_new(NULL, "request_seconds", "Request latency.", NULL, 0, &latency) < 0 ||
        fs_http_server_new(&opts, &srv) < 0 || fs_http_server_start(srv) < 0) {
        fprintf(stderr, "metrics: %s\n", fs_last_error());
        return 1;
    }
    /* Keep the child: each update is then one lock-free add. */
    fs_counter *ok = fs_counter_family_labels(requests, (const char *[]){"GET", "200"});
    for (int i = 0; i < 60; i++) {
        fs_counter_inc(ok);
        fs_histogram_observe(latency, 0.003 * (i % 7));
        sleep(1); /* curl -s 127.0.0.1:9100/metrics */
    }
    fs_http_server_free(srv);
    return 0;
}
