/* auth_unix: see auth_unix.h. */
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "auth_unix.h"

void
auth_unix_names(uid_t uid, char name[256], char num[24])
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	name[0] = '\0';
	snprintf(num, 24, "%lu", (unsigned long)uid);
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL &&
	    strlen(res->pw_name) < 256)
		strcpy(name, res->pw_name);
}
