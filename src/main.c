/* main.c - placeholder entry point until the CLI lands (issue: core executor). */
#include <stdio.h>

int main(void)
{
	fputs("mfsandbox: not built yet\n", stderr);
	return 202;
}
