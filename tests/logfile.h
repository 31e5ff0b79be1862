/*
 * logfile: what tests need to know of a state dir's change log
 * (agent/persist.c).  The agent preallocates the log, so its size says
 * nothing; where its records end does.
 */
#ifndef DISTKV_TESTS_LOGFILE_H
#define DISTKV_TESTS_LOGFILE_H

#include <sys/types.h>

/*
 * The offset after the last framed record of the file at path: the
 * 8-byte magic, then records of a little-endian length (not 0), a
 * checksum and that many bytes, for as long as they fit in the file.
 * Checksums are not checked.  -1 if the file cannot be read.
 */
off_t logfile_records_end(const char *path);

#endif
