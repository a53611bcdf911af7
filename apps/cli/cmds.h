/* apps/cli/cmds.h — the subcommands of the `sluice` binary. Each lives in its own cmd_*.c and
 * returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef SL_APPS_CLI_CMDS_H
#define SL_APPS_CLI_CMDS_H

int sl_cmd_generate(int argc, char **argv); /* cmd_generate.c: txt2img, sd.cpp-compatible flags */
int sl_cmd_info(int argc, char **argv);     /* cmd_info.c: format, tensors, dtypes, bytes */
int sl_cmd_synth(int argc, char **argv);    /* cmd_synth.c: random-weight model files */
int sl_cmd_bench(int argc, char **argv);    /* cmd_bench.c: DiT/pipeline benchmarks */

#endif
