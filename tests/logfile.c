/* logfile: see logfile.h. */
#include <stdint.h>
#include <stdio.h>

#include "logfile.h"

#define MAGIC_LEN 8

off_t
logfile_records_end(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t h[8];
	off_t end = MAGIC_LEN, size;

	if (f == NULL || fseeko(f, 0, SEEK_END) != 0 ||
	    (size = ftello(f)) < MAGIC_LEN) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	while (size - end >= 8 && fseeko(f, end, SEEK_SET) == 0 &&
	    fread(h, 1, 8, f) == 8) {
		uint32_t len = (uint32_t)h[0] | (uint32_t)h[1] << 8 |
		    (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;

		if (len == 0 || len > size - end - 8)
			break;
		end += 8 + (off_t)len;
	}
	fclose(f);
	return end;
}
