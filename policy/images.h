/*
 * images.h - container image references for the `images` dimension
 * (internal to policy/; the public entry point is
 * mcpd_policy_image_normalise).
 */
#ifndef MCPD_POLICY_IMAGES_H
#define MCPD_POLICY_IMAGES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Normalises ref[0..len) into out (cap bytes). With pattern set, glob
 * characters are admitted inside the components (and only the shape is
 * checked); otherwise the reference must follow the distribution grammar.
 * Returns 0, or -1 with *why.
 */
int mcpd__policy_image_norm(char *out, size_t cap, const char *ref, size_t len, bool pattern,
                            const char **why);

#endif
