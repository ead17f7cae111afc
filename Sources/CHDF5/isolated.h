#ifndef SCION_CHDF5_ISOLATED_H
#define SCION_CHDF5_ISOLATED_H
// Walking an untrusted HDF5 file in a child process.
//
// libhdf5 1.10.8 (Debian 12's) trusts the structures of a file: a damaged global heap object, or a
// string descriptor that disagrees with it, makes H5Aread overrun a buffer inside H5HG_read or
// H5T__conv_vlen (a crash, or a corrupted malloc arena) instead of failing; damaged link tables and
// object headers can crash H5Literate, H5Aiterate2 or H5Dopen2. Fuzzing Keras .h5 files found the
// reader's crashes there. libhdf5 offers no raw access to check those bytes first, so right after
// opening a file Scion walks it once in a forked child: every object reachable by hard links, every
// attribute, every variable-length string attribute read (the values come back through a pipe, so
// the parent never converts one itself), every dataset opened and, when chunked, read. A crash or
// a hang ends only the child; the caller gets a status and the last object the child reached. The
// child runs plain C from fork to _exit (no Swift runtime, whose locks another thread may hold;
// glibc resets malloc's at fork).
#include <hdf5.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// Present only in sanitizer-instrumented builds (weak: NULL otherwise).
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

// The child's exit statuses are these plus SCION_CHILD_EXIT_BASE, so that an exit by anything else
// (a sanitizer's report in an instrumented build exits with 1) counts as a crash.
enum { SCION_CHILD_EXIT_BASE = 100 };

enum {
    SCION_ISOLATED_OK = 0,
    SCION_ISOLATED_READ_FAILED = 1,   // libhdf5 returned an error (the child reported it)
    SCION_ISOLATED_CRASHED = 2,       // the child died of a signal, or exited some other way
    SCION_ISOLATED_TIMED_OUT = 3,     // the child did not finish in time (killed)
    SCION_ISOLATED_TOO_LARGE = 4,     // the child's answer exceeds the caller's limit
    SCION_ISOLATED_SYSTEM = 5         // fork, pipe or memory failed
};

// Record kinds in the child's answer: 'O' an object the walk reached (its path), 'S' the strings of
// a variable-length string attribute (object path, attribute name, count, strings). Every field is
// an 8-byte length then its bytes; the count is a bare 8-byte number.
static inline int scion_write_all(int fd, const void *data, size_t size) {
    const char *p = (const char *)data;
    while (size > 0) {
        ssize_t written = write(fd, p, size);
        if (written < 0) { if (errno == EINTR) continue; return -1; }
        p += written;
        size -= (size_t)written;
    }
    return 0;
}

static inline int scion_write_field(int fd, const char *text, size_t length) {
    uint64_t size = length;
    return scion_write_all(fd, &size, sizeof size) || (length > 0 && scion_write_all(fd, text, length)) ? -1 : 0;
}

typedef struct {
    int fd;
    char path[4096];
} scion_walk_state;

static inline herr_t scion_walk_attribute(hid_t location, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    scion_walk_state *state = (scion_walk_state *)data;
    hid_t attribute = H5Aopen(location, name, H5P_DEFAULT);
    if (attribute < 0) return 0;   // the parent meets the same error when it reads, and reports it
    hid_t type = H5Aget_type(attribute), space = H5Aget_space(attribute);
    if (type >= 0 && space >= 0 && H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0) {
        hssize_t points = H5Sget_simple_extent_type(space) == H5S_NULL ? 0 : H5Sget_simple_extent_npoints(space);
        hid_t memory = H5Tcopy(H5T_C_S1);
        char **strings = points > 0 && points < (1 << 24) ? (char **)calloc((size_t)points, sizeof(char *)) : NULL;
        if (memory >= 0 && strings && H5Tset_size(memory, H5T_VARIABLE) >= 0 && H5Tset_cset(memory, H5Tget_cset(type)) >= 0 &&
            H5Aread(attribute, memory, strings) >= 0) {
            uint64_t count = (uint64_t)points;
            int failed = scion_write_all(state->fd, "S", 1) || scion_write_field(state->fd, state->path, strlen(state->path)) ||
                         scion_write_field(state->fd, name, strlen(name)) || scion_write_all(state->fd, &count, sizeof count);
            for (hssize_t i = 0; i < points && !failed; i++) {
                failed = scion_write_field(state->fd, strings[i] ? strings[i] : "", strings[i] ? strlen(strings[i]) : 0);
            }
            if (failed) _exit(SCION_CHILD_EXIT_BASE + SCION_ISOLATED_SYSTEM);
        }
        // No reclaim: the child exits right after the walk.
        if (memory >= 0) H5Tclose(memory);
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Aclose(attribute);
    return 0;
}

static inline herr_t scion_walk_object(hid_t root, const char *name, const H5O_info_t *info, void *data) {
    scion_walk_state *state = (scion_walk_state *)data;
    if (strcmp(name, ".") == 0) snprintf(state->path, sizeof state->path, "/");
    else snprintf(state->path, sizeof state->path, "/%s", name);
    if (scion_write_all(state->fd, "O", 1) || scion_write_field(state->fd, state->path, strlen(state->path))) {
        _exit(SCION_CHILD_EXIT_BASE + SCION_ISOLATED_SYSTEM);
    }
    hid_t object = H5Oopen(root, name, H5P_DEFAULT);
    if (object < 0) return 0;
    H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, NULL, scion_walk_attribute, data);
    if (info->type == H5O_TYPE_DATASET) {
        // Chunked data is found through a B-tree that a damaged file can break; read it all here
        // (bounded). Contiguous data is one range the parent checks against the file's size.
        hid_t plist = H5Dget_create_plist(object), type = H5Dget_type(object), space = H5Dget_space(object);
        if (plist >= 0 && type >= 0 && space >= 0 && H5Pget_layout(plist) == H5D_CHUNKED && H5Tis_variable_str(type) <= 0 &&
            H5Tget_class(type) != H5T_VLEN) {
            hssize_t points = H5Sget_simple_extent_npoints(space);
            size_t size = H5Tget_size(type);
            // The parent refuses more than deflate's ratio over the stored bytes; so does the walk.
            uint64_t stored = H5Dget_storage_size(object);
            if (points > 0 && size > 0 && (uint64_t)points <= (uint64_t)(1 << 30) / size &&
                (uint64_t)points * size <= (16u << 20) + stored * 1100) {
                void *buffer = malloc((size_t)points * size);
                if (buffer) H5Dread(object, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
                free(buffer);
            }
        }
        if (plist >= 0) H5Pclose(plist);
        if (type >= 0) H5Tclose(type);
        if (space >= 0) H5Sclose(space);
    }
    H5Oclose(object);
    return 0;
}

/// Runs `work(fd, argument)` in a child process and collects what it writes to `fd`, up to
/// `limit` bytes and `timeout_ms` milliseconds. On success `*out` holds the bytes (free with free()).
static inline int scion_run_isolated(int (*work)(int, void *), void *argument, size_t limit, int timeout_ms,
                                     char **out, size_t *out_size, int *signal_number) {
    *out = NULL;
    *out_size = 0;
    *signal_number = 0;
    int fds[2];
    if (pipe(fds) != 0) return SCION_ISOLATED_SYSTEM;
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) { close(fds[0]); close(fds[1]); return SCION_ISOLATED_SYSTEM; }
    if (child == 0) {
        close(fds[0]);
        // Never outlive the caller (killed while waiting) or the time it waits: a libhdf5 loop
        // would otherwise spin on as an orphan.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(SCION_CHILD_EXIT_BASE + SCION_ISOLATED_SYSTEM);
        // Under a fuzzer, its death callback would report the child's crash as the fuzzer's own.
        if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(NULL);
        alarm((unsigned)(timeout_ms / 1000 + 2));
        // Die quietly: no crash report from the Swift runtime's handlers, no glibc heap-corruption
        // message; the parent reports what happened in one line.
        int quiet[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGTRAP, SIGALRM };
        for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) signal(quiet[i], SIG_DFL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { dup2(null, STDERR_FILENO); dup2(null, STDOUT_FILENO); close(null); }
        _exit(SCION_CHILD_EXIT_BASE + work(fds[1], argument));
    }
    close(fds[1]);
    size_t capacity = 4096, size = 0;
    char *buffer = (char *)malloc(capacity);
    int result = buffer ? SCION_ISOLATED_OK : SCION_ISOLATED_SYSTEM;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (result == SCION_ISOLATED_OK) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms) { result = SCION_ISOLATED_TIMED_OUT; break; }
        struct pollfd wait_for = { fds[0], POLLIN, 0 };
        int ready = poll(&wait_for, 1, (int)(timeout_ms - elapsed));
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) { result = SCION_ISOLATED_TIMED_OUT; break; }
        if (size == capacity) {
            if (capacity >= limit) { result = SCION_ISOLATED_TOO_LARGE; break; }
            char *grown = (char *)realloc(buffer, capacity * 2);
            if (grown == NULL) { result = SCION_ISOLATED_SYSTEM; break; }
            buffer = grown;
            capacity *= 2;
        }
        ssize_t got = read(fds[0], buffer + size, capacity - size);
        if (got < 0) { if (errno == EINTR) continue; result = SCION_ISOLATED_SYSTEM; break; }
        if (got == 0) break;   // the child closed the pipe: it has finished
        size += (size_t)got;
    }
    close(fds[0]);
    if (result != SCION_ISOLATED_OK) kill(child, SIGKILL);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (result == SCION_ISOLATED_OK) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) - SCION_CHILD_EXIT_BASE : -1;
        if (WIFSIGNALED(status)) { result = SCION_ISOLATED_CRASHED; *signal_number = WTERMSIG(status); }
        else if (code == SCION_ISOLATED_READ_FAILED || code == SCION_ISOLATED_SYSTEM) result = code;
        else if (code != SCION_ISOLATED_OK) { result = SCION_ISOLATED_CRASHED; *signal_number = -WEXITSTATUS(status); }
    }
    *out = buffer;   // also on failure: the records before it say how far the child got
    *out_size = size;
    return result;
}

static inline int scion_walk_work(int fd, void *argument) {
    scion_walk_state state;
    state.fd = fd;
    state.path[0] = 0;
    hid_t file = *(hid_t *)argument;
    if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, scion_walk_object, &state, H5O_INFO_BASIC) < 0) return SCION_ISOLATED_READ_FAILED;
    return SCION_ISOLATED_OK;
}

/// Walks the open file `file` in a child process (see the top of this header).
static inline int scion_walk_file_isolated(hid_t file, size_t limit, int timeout_ms, char **out, size_t *out_size,
                                           int *signal_number) {
    return scion_run_isolated(scion_walk_work, &file, limit, timeout_ms, out, out_size, signal_number);
}

typedef struct {
    hid_t object;
    const char *name;
} scion_attribute_target;

static inline int scion_attribute_work(int fd, void *argument) {
    scion_attribute_target *target = (scion_attribute_target *)argument;
    scion_walk_state state;
    state.fd = fd;
    state.path[0] = 0;
    scion_walk_attribute(target->object, target->name, NULL, &state);
    return SCION_ISOLATED_OK;
}

/// Reads one variable-length string attribute in a child process: for objects the file walk did
/// not reach (a second hard link to an object, a file opened some other way).
static inline int scion_read_attribute_isolated(hid_t object, const char *name, size_t limit, int timeout_ms, char **out,
                                                size_t *out_size, int *signal_number) {
    scion_attribute_target target = { object, name };
    return scion_run_isolated(scion_attribute_work, &target, limit, timeout_ms, out, out_size, signal_number);
}

#endif
