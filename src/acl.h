/*
 * acl.h - access-control lists: immutable sets of IPv4 and IPv6 CIDR
 * prefixes that a client's address is matched against ("Who may
 * connect", echod.conf(5) keys allow, deny and proxy_from).
 *
 * A list is made in two steps: a builder collects prefixes from text
 * (acl_builder_new, acl_add ...), then acl_build sorts them, merges
 * overlapping and adjacent ones into disjoint ranges and hands back a
 * struct acl that never changes again. Every function that takes a
 * const struct acl * only reads it, takes no lock and allocates nothing,
 * so any number of threads may match against one list at once.
 *
 * IPv4-mapped IPv6 (::ffff:a.b.c.d, from a dual-stack socket) is IPv4
 * here, as for the source key (srckey.h): a mapped client address is
 * matched against the IPv4 entries, and an entry written inside
 * ::ffff:0:0/96 (such as "::ffff:10.0.0.0/104") is stored as the IPv4
 * entry it stands for ("10.0.0.0/8"). An IPv6 entry that only contains
 * that range (such as "::/0") does not match IPv4 clients.
 *
 * Cost: a lookup is one binary search over the merged ranges of the
 * client's family, O(log n) with no allocation; building is a sort,
 * O(n log n). Memory: 8 bytes per merged IPv4 range, 32 per IPv6 range.
 */
#ifndef ECHOD_ACL_H
#define ECHOD_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Room for any message acl_add writes. */
#define ACL_ERR_MAX 128

struct acl;
struct acl_builder;

/* An empty builder, or NULL with errno ENOMEM. */
struct acl_builder *acl_builder_new(void);

/*
 * Add one prefix, written "a.b.c.d", "a.b.c.d/len", "x::y" or "x::/len"
 * (a bare address is /32 or /128; no spaces, no names, no zone). Returns
 * 0, or -1 with one line in err (truncated to errlen; nothing written
 * when errlen is 0) that does not repeat the text, one of:
 *   not an IPv4 or IPv6 address
 *   expected a prefix length 0..32 after "/"       (0..128 for IPv6)
 *   junk after the prefix length
 *   prefix length must be 0..32                    (0..128 for IPv6)
 *   host bits set beyond /8: did you mean "10.0.0.0/8"?
 *   out of memory                                  (errno ENOMEM)
 * A failed add leaves the builder as it was.
 */
int acl_add(struct acl_builder *b, const char *text, char *err, size_t errlen);

/*
 * The list of everything added to b, sorted and merged. Consumes b
 * (whatever the result, b must not be used again). Returns a list with
 * one reference, or NULL with errno ENOMEM. A builder with nothing in it
 * gives an empty list, which matches nothing.
 */
struct acl *acl_build(struct acl_builder *b);

/* Abandon a builder without building; NULL is allowed. */
void acl_builder_free(struct acl_builder *b);

/*
 * Lists are reference counted, so that a list can outlive the config
 * that built it in a thread that still matches against it: acl_ref takes
 * one more reference and returns a; acl_free drops one, and the last
 * frees the list. Both are safe from any thread (atomic count); NULL is
 * allowed and ignored.
 */
struct acl *acl_ref(struct acl *a);
void acl_free(struct acl *a);

/* Entries as they were added (before merging); 0 for NULL. */
size_t acl_count(const struct acl *a);

/* Disjoint ranges left after merging, both families; 0 for NULL. */
size_t acl_ranges(const struct acl *a);

/*
 * Whether sa (AF_INET or AF_INET6) lies in one of a's prefixes. NULL, an
 * empty list and any other family match nothing.
 */
bool acl_match(const struct acl *a, const struct sockaddr *sa);

/*
 * Whether a client at sa is served: it matches no entry of deny and, if
 * allow has entries, it matches one of them. NULL is an empty list, so
 * acl_permits(NULL, NULL, sa) is true.
 */
bool acl_permits(const struct acl *allow, const struct acl *deny,
                 const struct sockaddr *sa);

/* Whether a and b match exactly the same addresses (NULL is empty). */
bool acl_equal(const struct acl *a, const struct acl *b);

#endif /* ECHOD_ACL_H */
