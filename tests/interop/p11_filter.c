/*
 * A PKCS#11 module that passes every call to a real module except that it
 * hides one mechanism, CKM_ECDSA: C_GetMechanismList leaves it out,
 * C_GetMechanismInfo and C_SignInit answer CKR_MECHANISM_INVALID for it.
 * tests/pkcs11.rs uses it to show what certforge says about a token that
 * lacks the mechanism a key type needs (SoftHSM has them all).
 *
 *   P11_FILTER_REAL=/usr/lib/softhsm/libsofthsm2.so  (the module wrapped)
 *   P11_FILTER_KEEP_LIST=1  (optional: list CKM_ECDSA, refuse it only at
 *                            C_SignInit, like a token that lies)
 *
 * Build: gcc -shared -fPIC -o filter.so p11_filter.c -ldl
 *
 * The types are declared here rather than taken from a pkcs11.h so that
 * nothing beyond gcc is needed. CK_FUNCTION_LIST is a CK_VERSION then 68
 * function pointers in the order of PKCS#11 v2.40 §5.16 (checked against
 * struct ck_function_list in p11-kit's pkcs11.h): C_GetMechanismList is
 * pointer 7, C_GetMechanismInfo 8, C_SignInit 42, counting from 0. Every
 * CK_ULONG is an unsigned long (Unix ABI).
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_MECHANISM_TYPE;

typedef struct {
    unsigned char major;
    unsigned char minor;
} CK_VERSION;

typedef struct {
    CK_MECHANISM_TYPE mechanism;
    void *pParameter;
    CK_ULONG ulParameterLen;
} CK_MECHANISM;

/* The generic function pointer type, which gcc lets any other cast to. */
typedef void (*CK_FN)(void);

#define N_FUNCTIONS 68
#define IDX_GET_FUNCTION_LIST 3
#define IDX_GET_MECHANISM_LIST 7
#define IDX_GET_MECHANISM_INFO 8
#define IDX_SIGN_INIT 42

typedef struct {
    CK_VERSION version;
    CK_FN fn[N_FUNCTIONS];
} CK_FUNCTION_LIST;

#define CKR_OK 0x00UL
#define CKR_GENERAL_ERROR 0x05UL
#define CKR_ARGUMENTS_BAD 0x07UL
#define CKR_MECHANISM_INVALID 0x70UL
#define CKR_BUFFER_TOO_SMALL 0x150UL
#define CKM_ECDSA 0x1041UL

typedef CK_RV (*get_function_list_t)(CK_FUNCTION_LIST **);
typedef CK_RV (*get_mechanism_list_t)(CK_SLOT_ID, CK_MECHANISM_TYPE *, CK_ULONG *);
typedef CK_RV (*get_mechanism_info_t)(CK_SLOT_ID, CK_MECHANISM_TYPE, void *);
typedef CK_RV (*sign_init_t)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_OBJECT_HANDLE);

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST filtered;

static int keep_list(void) {
    const char *v = getenv("P11_FILTER_KEEP_LIST");
    return v != NULL && strcmp(v, "1") == 0;
}

/* The real list without CKM_ECDSA. The real module is asked into a buffer
 * of our own, so the caller's size query and its second call agree. */
static CK_RV filter_get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE *list, CK_ULONG *count) {
    get_mechanism_list_t get = (get_mechanism_list_t)real->fn[IDX_GET_MECHANISM_LIST];
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    if (keep_list())
        return get(slot, list, count);
    CK_ULONG n = 0;
    CK_RV rv = get(slot, NULL, &n);
    if (rv != CKR_OK)
        return rv;
    CK_MECHANISM_TYPE *all = calloc(n ? n : 1, sizeof *all);
    if (all == NULL)
        return CKR_GENERAL_ERROR;
    rv = get(slot, all, &n);
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; i < n; i++)
        if (all[i] != CKM_ECDSA)
            all[kept++] = all[i];
    if (list == NULL) {
        *count = kept;
        free(all);
        return CKR_OK;
    }
    if (*count < kept) {
        *count = kept;
        free(all);
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(list, all, kept * sizeof *all);
    *count = kept;
    free(all);
    return CKR_OK;
}

static CK_RV filter_get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, void *info) {
    if (type == CKM_ECDSA && !keep_list())
        return CKR_MECHANISM_INVALID;
    return ((get_mechanism_info_t)real->fn[IDX_GET_MECHANISM_INFO])(slot, type, info);
}

static CK_RV filter_sign_init(CK_SESSION_HANDLE session, CK_MECHANISM *mech, CK_OBJECT_HANDLE key) {
    if (mech != NULL && mech->mechanism == CKM_ECDSA)
        return CKR_MECHANISM_INVALID;
    return ((sign_init_t)real->fn[IDX_SIGN_INIT])(session, mech, key);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) {
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    if (real == NULL) {
        const char *path = getenv("P11_FILTER_REAL");
        if (path == NULL)
            return CKR_GENERAL_ERROR;
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL)
            return CKR_GENERAL_ERROR;
        get_function_list_t get = (get_function_list_t)dlsym(lib, "C_GetFunctionList");
        if (get == NULL || get(&real) != CKR_OK || real == NULL)
            return CKR_GENERAL_ERROR;
        filtered = *real;
        filtered.fn[IDX_GET_FUNCTION_LIST] = (CK_FN)C_GetFunctionList;
        filtered.fn[IDX_GET_MECHANISM_LIST] = (CK_FN)filter_get_mechanism_list;
        filtered.fn[IDX_GET_MECHANISM_INFO] = (CK_FN)filter_get_mechanism_info;
        filtered.fn[IDX_SIGN_INIT] = (CK_FN)filter_sign_init;
    }
    *out = &filtered;
    return CKR_OK;
}
