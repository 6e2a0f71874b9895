/*
 * rusage.c - runs a command N times and prints, per run, wall time, user+sys
 * CPU and peak RSS from wait4(2).  A small C parent matters: a child forked
 * from a big process (Python) starts with that process's RSS high-water mark.
 *
 * usage: rusage N CMD [ARG...]   ->  "wall_us cpu_us maxrss_kib status" lines
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: rusage N CMD [ARG...]\n");
		return 2;
	}
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++) {
		long long t0 = now_us();
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		int st;
		struct rusage ru;
		if (wait4(pid, &st, 0, &ru) != pid)
			return 1;
		long long wall = now_us() - t0;
		long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
				ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
		printf("%lld %lld %ld %d\n", wall, cpu, ru.ru_maxrss,
		       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	return 0;
}
