/* error.h - the error codes are public: see include/wfo/error.h. */
#include "wfo/error.h"
