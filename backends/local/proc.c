/*
 * proc.c - reading /proc (start times against pid reuse, children of a
 * pid) and running a short helper program with its stderr captured.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Start time of pid in clock ticks (field 22 of /proc/PID/stat), 0 if gone. */
unsigned long long local_proc_start_time(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *text = local_read_text(path);
	if (!text)
		return 0;
	unsigned long long start = 0;
	char *p = strrchr(text, ')');
	/* after ")": state is field 3, starttime field 22 */
	for (int field = 2; p && *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (p && *p)
		start = strtoull(p, NULL, 10);
	free(text);
	return start;
}

bool local_process_alive(pid_t pid, unsigned long long start)
{
	return pid > 0 && start && local_proc_start_time(pid) == start;
}

/* Host pids whose parent is ppid (reads every /proc/PID/stat: portable,
 * unlike /proc/PID/task/TID/children which needs CONFIG_PROC_CHILDREN). */
void local_children_of(pid_t ppid, struct mfs_strv *out)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		char *text = local_read_text(path);
		if (!text)
			continue;
		char *p = strrchr(text, ')');
		if (p && p[1] == ' ' && p[2] && p[3] == ' ' && atol(p + 4) == (long)ppid)
			mfs_strv_push(out, e->d_name);
		free(text);
	}
	closedir(d);
}



/* Runs argv with stdout to /dev/null and stderr captured; returns the wait
 * status or -1 if it could not start. */
int local_run_capture(const char *const *argv, struct mfs_buf *errout)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		dup2(p[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	char chunk[512];
	ssize_t n;
	while ((n = read(p[0], chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (errout->len < 4096)
			mfs_buf_add(errout, chunk, (size_t)n);
	}
	close(p[0]);
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return -1;
	return ws;
}

void local_chomp(struct mfs_buf *b)
{
	while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r'))
		b->data[--b->len] = '\0';
}
