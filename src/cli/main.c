/* main.c - the mfsandbox binary: everything happens in src/cli/cli.c. */
#include "mfs/cli/cli.h"

int main(int argc, char **argv)
{
	return mfs_cli_main(argc, argv);
}
