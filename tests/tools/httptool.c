/*
 * httptool - test-only driver for src/net/http.c, so pytest can exercise the
 * client against a real loopback server.  Not installed, not in the CLI.
 *
 *   httptool [-X METHOD] [-H 'Name: v']... [-d BODY | -f BODYFILE]
 *            [-o OUTFILE] [--max-body N] [--on-data] [--abort-after N] [-r RETRIES]
 *            [--retry-safe] [--cancel-on-sigterm] [-t TIMEOUT_MS]
 *            [--deadline-ms MS] [--prime URL0]
 *            [--form-data NAME=VALUE]... [--form-file NAME=PATH]... URL
 *
 * --prime first GETs URL0 on the same handle (its answer is not printed),
 * so the request to URL may go out on a reused connection.  --deadline-ms
 * sets req.deadline that many milliseconds from now.  --form-* build a
 * multipart/form-data body (req.form), parts in order; a file part is named
 * "upload.bin" and typed application/octet-stream.
 * Prints "status <n>" then, for memory bodies, the body; --on-data prints the
 * byte count the callback saw.  Errors: "httptool: <code>: <message>", exit 1.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mfs/util/cancel.h"
#include "mfs/net/http.h"

struct counter {
	size_t bytes;
	size_t abort_after;
};

static bool count(void *ctx, const char *data, size_t len)
{
	struct counter *c = ctx;
	(void)data;
	c->bytes += len;
	return !(c->abort_after && c->bytes >= c->abort_after);
}

static void on_signal(int signo)
{
	mfs_cancel_request(signo);
}

int main(int argc, char **argv)
{
	struct mfs_strv headers = MFS_STRV_INIT;
	struct mfs_http_req req = { .method = "GET" };
	struct mfs_http_resp resp;
	struct mfs_err err = { 0 };
	struct counter ctr = { 0 };
	const char *prime = NULL;
	struct mfs_http_part form[8];
	size_t nform = 0;
	int i, rc = 0;

	for (i = 1; i < argc - 1; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-X"))
			req.method = argv[++i];
		else if (!strcmp(a, "-H"))
			mfs_strv_push(&headers, argv[++i]);
		else if (!strcmp(a, "-d")) {
			req.body = argv[++i];
			req.body_len = strlen(argv[i]);
		} else if (!strcmp(a, "-f"))
			req.body_file = argv[++i];
		else if (!strcmp(a, "-o"))
			req.out_file = argv[++i];
		else if (!strcmp(a, "--max-body"))
			req.max_body = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--on-data")) {
			req.on_data = count;
			req.on_data_ctx = &ctr;
		} else if (!strcmp(a, "--abort-after"))
			ctr.abort_after = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "-r"))
			req.retries = atoi(argv[++i]);
		else if (!strcmp(a, "--retry-safe"))
			req.retry_safe = true;
		else if (!strcmp(a, "-t"))
			req.timeout_ms = atol(argv[++i]);
		else if (!strcmp(a, "--deadline-ms")) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			req.deadline = (double)ts.tv_sec + ts.tv_nsec / 1e9 + atol(argv[++i]) / 1000.0;
		} else if (!strcmp(a, "--prime"))
			prime = argv[++i];
		else if ((!strcmp(a, "--form-data") || !strcmp(a, "--form-file")) && nform < 8 &&
			 strchr(argv[i + 1], '=')) {
			char *eq = strchr(argv[++i], '=');
			struct mfs_http_part *p = &form[nform++];
			*eq = '\0';
			*p = (struct mfs_http_part){ .name = argv[i] };
			if (a[7] == 'f') {
				p->file = eq + 1;
				p->filename = "upload.bin";
				p->type = "application/octet-stream";
			} else {
				p->data = eq + 1;
				p->len = strlen(eq + 1);
			}
			req.form = form;
			req.form_n = nform;
		}
		else if (!strcmp(a, "--cancel-on-sigterm")) {
			req.cancellable = true;
			mfs_cancel_init();
			signal(SIGTERM, on_signal);
		} else {
			fprintf(stderr, "httptool: unknown option %s\n", a);
			return 2;
		}
	}
	if (i != argc - 1) {
		fprintf(stderr, "httptool: missing URL\n");
		return 2;
	}
	req.url = argv[i];
	req.headers = &headers;

	mfs_http_resp_init(&resp);
	if (prime) {
		struct mfs_http_req first = { .method = "GET", .url = prime };
		if (mfs_http_do(&first, &resp, &err) != MFS_OK) {
			fprintf(stderr, "httptool: %s: %s\n", mfs_code_name(err.code), err.msg);
			rc = 1;
			goto out;
		}
	}
	if (mfs_http_do(&req, &resp, &err) != MFS_OK) {
		fprintf(stderr, "httptool: %s: %s\n", mfs_code_name(err.code), err.msg);
		rc = 1;
		goto out;
	}
	printf("status %ld\n", resp.status);
	if (req.on_data)
		printf("on_data %zu\n", ctr.bytes);
	if (resp.status >= 300) {
		mfs_http_status_fail(&err, &req, &resp);
		fprintf(stderr, "httptool: %s: %s\n", mfs_code_name(err.code), err.msg);
	}
	fwrite(resp.body.data ? resp.body.data : "", 1, resp.body.len, stdout);
out:
	mfs_http_resp_release(&resp);
	mfs_strv_release(&headers);
	mfs_http_cleanup();
	return rc;
}
