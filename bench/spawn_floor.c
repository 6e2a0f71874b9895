/*
 * spawn_floor.c - the least an executor that is a process of its own can
 * cost: exec itself (dynamically linked, like mfsandbox), fork, exec the
 * command, wait.  bench/local_overhead runs bare bubblewrap through it; its
 * ratio to bare bubblewrap is the floor under mfsandbox's.
 *
 * usage: spawn_floor CMD [ARG...]   ->  exits with CMD's status
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: spawn_floor CMD [ARG...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		execv(argv[1], argv + 1);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return 1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
