/* Process plumbing shared by every SCALE binary's main(). */
#ifndef SCALE_PROCESS_H
#define SCALE_PROCESS_H

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread; threads created
 * afterwards inherit the mask, so only sc_process_wait_signal sees them.
 * Call first thing in main(). Also ignores SIGPIPE. */
void sc_process_block_signals(void);

/* Waits for SIGINT or SIGTERM (SIGHUP is ignored) and returns its number. */
int sc_process_wait_signal(void);

#endif
