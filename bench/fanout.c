/*
 * fanout.c - starts N copies of a command at once and reports, per copy,
 * wall time, user+sys CPU and peak RSS (wait4), plus memory sampled while
 * they run: each copy's largest RSS, PSS and private (unshared) size from
 * /proc/PID/smaps_rollup, and the peak of the PSS sum over all live copies.
 * Reading smaps_rollup walks a process's page tables (~0.25 ms each under
 * load), so a round reads at most SAMPLE_MAX live copies, taking turns, and
 * the sum is estimated from their mean.
 *
 * Why C: a child forked from a big parent (Python) starts with the parent's
 * RSS high-water mark, and a Python parent forking a thousand children
 * spends more CPU than the children measured.
 *
 * usage: fanout [-o DIR] [-i MS] N CMD [ARG...]
 *   "{}" in an argument becomes the copy's index (0..N-1); with -o, copy i
 *   writes stdout/stderr to DIR/i.out and DIR/i.err (else /dev/null); -i is
 *   the sampling interval (default 200 ms, 0: no sampling).
 * output: one line per copy
 *   "i status wall_us cpu_us maxrss_kib rss_kib pss_kib private_kib"
 * then "total wall_us peak_live peak_pss_sum_kib samples" (samples: copies read).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SAMPLE_MAX 50

struct copy {
	pid_t pid;
	long long t0, wall, cpu;
	long maxrss, rss, pss, priv;
	int status;
	int done;
};

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static char *subst(const char *arg, int i)
{
	const char *p = strstr(arg, "{}");
	char *out;
	if (!p)
		return (char *)arg;
	if (asprintf(&out, "%.*s%d%s", (int)(p - arg), arg, i, p + 2) < 0)
		abort();
	return out;
}

static void redirect(const char *dir, int i, const char *ext, int fd)
{
	char path[4096];
	int f;
	if (dir)
		snprintf(path, sizeof(path), "%s/%d.%s", dir, i, ext);
	f = open(dir ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f < 0 || dup2(f, fd) < 0)
		_exit(126);
}

/* Rss, Pss and Private_* of one process; false once it has gone. */
static int sample(pid_t pid, long *rss, long *pss, long *priv)
{
	char path[64], line[256];
	long v;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	*rss = *pss = *priv = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Rss: %ld", &v) == 1)
			*rss = v;
		else if (sscanf(line, "Pss: %ld", &v) == 1)
			*pss = v;
		else if (sscanf(line, "Private_Clean: %ld", &v) == 1 ||
			 sscanf(line, "Private_Dirty: %ld", &v) == 1)
			*priv += v;
	}
	fclose(f);
	return *rss > 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	long interval_ms = 200;
	int opt;
	while ((opt = getopt(argc, argv, "+o:i:")) != -1) {
		if (opt == 'o')
			dir = optarg;
		else if (opt == 'i')
			interval_ms = atol(optarg);
		else
			return 2;
	}
	if (argc - optind < 2) {
		fprintf(stderr, "usage: fanout [-o DIR] [-i MS] N CMD [ARG...]\n");
		return 2;
	}
	int n = atoi(argv[optind]);
	char **cmd = argv + optind + 1;
	int nargs = argc - optind - 1;
	struct copy *c = calloc((size_t)n, sizeof(*c));
	char **av = calloc((size_t)nargs + 1, sizeof(*av));
	if (!c || !av)
		return 1;

	long long start = now_us();
	for (int i = 0; i < n; i++) {
		c[i].t0 = now_us();
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			for (int a = 0; a < nargs; a++)
				av[a] = subst(cmd[a], i);
			redirect(dir, i, "out", 1);
			redirect(dir, i, "err", 2);
			execvp(av[0], av);
			_exit(127);
		}
		c[i].pid = pid;
	}

	int live = n, peak_live = n, samples = 0, turn = 0;
	long peak_pss_sum = 0;
	long long next_sample = now_us();
	while (live > 0) {
		int st;
		struct rusage ru;
		pid_t pid = wait4(-1, &st, WNOHANG, &ru);
		if (pid > 0) {
			for (int i = 0; i < n; i++) {
				if (c[i].pid != pid)
					continue;
				c[i].wall = now_us() - c[i].t0;
				c[i].cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
					   ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
				c[i].maxrss = ru.ru_maxrss;
				c[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				c[i].done = 1;
				live--;
				break;
			}
			continue;
		}
		if (pid < 0 && errno != EINTR)
			break;
		if (interval_ms > 0 && now_us() >= next_sample) {
			long sum = 0;
			int read = 0;
			for (int k = 0; k < n && read < SAMPLE_MAX; k++) {
				int i = (turn + k) % n;
				long rss, pss, priv;
				if (c[i].done || !sample(c[i].pid, &rss, &pss, &priv))
					continue;
				read++;
				turn = (i + 1) % n;
				/* Between fork and exec a copy still maps fanout itself. */
				if (rss > c[i].rss)
					c[i].rss = rss;
				if (pss > c[i].pss)
					c[i].pss = pss;
				if (priv > c[i].priv)
					c[i].priv = priv;
				sum += pss;
			}
			if (read && sum / read * live > peak_pss_sum)
				peak_pss_sum = sum / read * live;
			samples += read;
			next_sample = now_us() + interval_ms * 1000;
		}
		if (live > peak_live)
			peak_live = live;
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	long long total = now_us() - start;
	for (int i = 0; i < n; i++)
		printf("%d %d %lld %lld %ld %ld %ld %ld\n", i, c[i].status, c[i].wall, c[i].cpu,
		       c[i].maxrss, c[i].rss, c[i].pss, c[i].priv);
	printf("total %lld %d %ld %d\n", total, peak_live, peak_pss_sum, samples);
	free(c);
	free(av);
	return 0;
}
