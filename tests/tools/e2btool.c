/*
 * e2btool - drives backends/e2b/ through its ops table alone, so the
 * backend's contract (create/upload/exec/download/destroy, list, kill) is
 * tested without the executor in between.  Used by tests/py/test_e2b_*.py.
 *
 *   e2btool run [-i IMAGE] [-t TIMEOUT] [-e K=V]... [-l K=V]... [-u LOCAL:REMOTE]...
 *               [-d REMOTE:LOCAL]... -- ARGV...
 *   e2btool ls
 *   e2btool kill ID
 *
 * Exit: the command's status; 200 + mfs_code on a backend error (message on
 * stderr as "e2btool: <code>: <message>").
 */
#include "mfs/backend.h"
#include "mfs/util/cancel.h"
#include "mfs/net/http.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const struct mfs_backend_ops mfs_e2b_ops;

static void out_write(void *ctx, enum mfs_stream s, const char *data, size_t len)
{
	(void)ctx;
	fwrite(data, 1, len, s == MFS_STDOUT ? stdout : stderr);
	fflush(s == MFS_STDOUT ? stdout : stderr);
}

static int fail(const struct mfs_err *err)
{
	fprintf(stderr, "e2btool: %s: %s\n", mfs_code_name(err->code), err->msg);
	return 200 + (int)err->code;
}

static void set_kv(struct mfs_kvlist *kv, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *k = eq ? strndup(arg, (size_t)(eq - arg)) : strdup(arg);
	mfs_kvlist_set(kv, k, eq ? eq + 1 : "");
	free(k);
}

static void print_info(void *ctx, const struct mfs_sandbox_info *info)
{
	(void)ctx;
	printf("%s %s task=%s\n", info->id, info->state ? info->state : "-",
	       mfs_kvlist_get(info->labels, MFS_LABEL_TASK) ? mfs_kvlist_get(info->labels, MFS_LABEL_TASK) : "-");
}

static void on_signal(int signo)
{
	mfs_cancel_request(signo);
}

static int cmd_run(int argc, char **argv)
{
	struct mfs_kvlist env = MFS_KVLIST_INIT, labels = MFS_KVLIST_INIT;
	struct mfs_kvlist ups = MFS_KVLIST_INIT, downs = MFS_KVLIST_INIT;
	struct mfs_sandbox_spec spec = { .name = "e2btool", .labels = &labels, .env = &env };
	struct mfs_sandbox *sb = NULL;
	struct mfs_err err = { 0 };
	long cmd_timeout = 0;
	int opt, status = -1, rc = 0;

	mfs_kvlist_set(&labels, MFS_LABEL_OWNER, "1");
	while ((opt = getopt(argc, argv, "+i:t:e:l:u:d:n:c:m:")) != -1) {
		switch (opt) {
		case 'i': spec.image = optarg; break;
		case 't': spec.timeout_s = cmd_timeout = atol(optarg); break;
		case 'e': set_kv(&env, optarg); break;
		case 'l': set_kv(&labels, optarg); break;
		case 'n': spec.network = optarg; break;
		case 'c': spec.cpu = atof(optarg); break;
		case 'm': spec.memory_mb = atol(optarg); break;
		case 'u': case 'd': {
			char *colon = strchr(optarg, ':');
			if (!colon)
				return 2;
			*colon = '\0';
			mfs_kvlist_set(opt == 'u' ? &ups : &downs, optarg, colon + 1);
			break;
		}
		default: return 2;
		}
	}
	if (optind >= argc)
		return 2;
	if (mfs_e2b_ops.create(&spec, &sb, &err) != MFS_OK) {
		rc = fail(&err);
		goto out;
	}
	fprintf(stderr, "e2btool: sandbox %s\n", sb->id);
	for (size_t i = 0; i < ups.n; i++)
		if (mfs_e2b_ops.upload(sb, ups.items[i].key, ups.items[i].value, &err) != MFS_OK) {
			rc = fail(&err);
			goto out;
		}
	struct mfs_exec_req req = { .argv = (const char *const *)argv + optind,
				    .timeout_s = cmd_timeout };
	struct mfs_io io = { out_write, NULL };
	if (mfs_e2b_ops.exec(sb, &req, &io, &status, &err) != MFS_OK) {
		rc = fail(&err);
		goto out;
	}
	for (size_t i = 0; i < downs.n; i++)
		if (mfs_e2b_ops.download(sb, downs.items[i].key, downs.items[i].value, &err) != MFS_OK) {
			rc = fail(&err);
			goto out;
		}
	rc = status;
out:
	if (sb) {
		struct mfs_err derr = { 0 };
		if (mfs_e2b_ops.destroy(sb, &derr) != MFS_OK && rc < 200)
			rc = fail(&derr);
	}
	mfs_kvlist_release(&env);
	mfs_kvlist_release(&labels);
	mfs_kvlist_release(&ups);
	mfs_kvlist_release(&downs);
	return rc;
}

int main(int argc, char **argv)
{
	struct mfs_err err = { 0 };
	int rc;

	mfs_cancel_init();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (argc < 2)
		return 2;
	if (!strcmp(argv[1], "run")) {
		rc = cmd_run(argc - 1, argv + 1);
	} else if (!strcmp(argv[1], "ls")) {
		rc = mfs_e2b_ops.list(print_info, NULL, &err) == MFS_OK ? 0 : fail(&err);
	} else if (!strcmp(argv[1], "kill") && argc == 3) {
		rc = mfs_e2b_ops.kill(argv[2], &err) == MFS_OK ? 0 : fail(&err);
	} else if (!strcmp(argv[1], "probe")) {
		struct mfs_buf notes = MFS_BUF_INIT;
		rc = mfs_e2b_ops.probe(&notes, &err) == MFS_OK ? 0 : fail(&err);
		fputs(notes.data ? notes.data : "", stdout);
		mfs_buf_release(&notes);
	} else {
		rc = 2;
	}
	mfs_http_cleanup();
	return rc;
}
