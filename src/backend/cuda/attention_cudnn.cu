/* backend/cuda/attention_cudnn.cu — attention through cuDNN's fused flash attention, with cuDNN
 * loaded at run time.
 *
 * Why: on Hopper, cuDNN's SDPA kernels (wgmma + TMA, warp-specialised) run about 2.5× faster than
 * the portable mma.sync kernel of attention.cu (docs/KERNELS.md). cuDNN is never linked: the first
 * attention call dlopens libcudnn.so.9 — from SLUICE_CUDNN_PATH (the library itself or its
 * folder), then each folder of LD_LIBRARY_PATH, then the loader's own search ("libcudnn.so.9",
 * "libcudnn.so") — and resolves the dozen functions of the backend API below. The enum values of
 * that API are declared here (a build needs no cuDNN headers); where cudnn_graph.h is installed
 * they are checked against it at compile time. Anything that fails (no library, cuDNN older
 * than 9.0 or a release with known SDPA bugs, a graph no engine accepts) is logged once at debug
 * level and reported as SL_ERR_UNSUPPORTED, so the caller runs the portable kernels.
 *
 * Graphs (tensors in the [B, S, H, Dh] layout, described to cuDNN as [B, H, S, Dh] through
 * strides): unified    one SDPA_FWD operation (Q, K, V, O, scale): cuDNN ≥ 9.13.1, non-causal only;
 *   composite  matmul Q·Kᵀ → ×scale → [causal: gen_index row/col, row ≥ col, select −inf] →
 *              max, sub, exp, sum, log + add (virtual stats), div → matmul ·V, the pattern cuDNN's
 *              flash engines match (the shape of cudnn-frontend's composite SDPA node).
 * The unified graph is tried first where it applies, the composite graph otherwise or when the
 * unified one is refused. GQA: K and V carry Hk heads; cuDNN maps query head h to h / (Hq/Hk), as
 * the portable kernel does. The causal mask is top-left aligned (query i sees keys ≤ i), as in
 * every other path.
 *
 * Plans: built once per (B, Sq, Sk, Hq, Hk, Dh, causal, dtype, graph) — heuristics mode A, then
 * FALLBACK; the first engine configuration that finalises wins — and kept in a small per-backend
 * cache (least recently used replaced), refusals included so a refused shape is not rebuilt at
 * every call. The workspace comes from the backend's grow-only scratch. Execution creates one
 * variant pack per call (device pointers plus host pointers to the by-value scalars) and runs on
 * the compute stream. */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend/cuda/cuda_impl.h"

extern "C" {
#include "core/log.h"
}

/* ---- the part of cuDNN 9's backend API used here (values of cudnn_graph.h) ---- */

namespace dnn {
typedef void *desc_t;
typedef void *handle_t;
typedef int status_t;

enum { /* cudnnBackendDescriptorType_t */
       POINTWISE_DESC = 0,
       ENGINE_DESC = 2,
       ENGINECFG_DESC = 3,
       ENGINEHEUR_DESC = 4,
       EXECUTION_PLAN_DESC = 5,
       OP_POINTWISE_DESC = 13,
       OPERATIONGRAPH_DESC = 15,
       VARIANT_PACK_DESC = 16,
       TENSOR_DESC = 17,
       MATMUL_DESC = 18,
       OP_MATMUL_DESC = 19,
       REDUCTION_DESC = 21,
       OP_REDUCTION_DESC = 22,
       OP_SDPA_FWD_DESC = 41
};
enum { /* cudnnBackendAttributeName_t */
       POINTWISE_MODE = 0,
       POINTWISE_MATH_PREC = 1,
       POINTWISE_AXIS = 9,
       ENGINEHEUR_MODE = 200,
       ENGINEHEUR_OPERATION_GRAPH = 201,
       ENGINEHEUR_RESULTS = 202,
       ENGINECFG_ENGINE = 300,
       EXECUTION_PLAN_HANDLE = 400,
       EXECUTION_PLAN_ENGINE_CONFIG = 401,
       EXECUTION_PLAN_WORKSPACE_SIZE = 402,
       OP_POINTWISE_PW_DESCRIPTOR = 750,
       OP_POINTWISE_XDESC = 751,
       OP_POINTWISE_BDESC = 752,
       OP_POINTWISE_YDESC = 753,
       OP_POINTWISE_ALPHA1 = 754,
       OP_POINTWISE_ALPHA2 = 755,
       OP_POINTWISE_TDESC = 758,
       OPERATIONGRAPH_HANDLE = 800,
       OPERATIONGRAPH_OPS = 801,
       TENSOR_BYTE_ALIGNMENT = 900,
       TENSOR_DATA_TYPE = 901,
       TENSOR_DIMENSIONS = 902,
       TENSOR_STRIDES = 903,
       TENSOR_UNIQUE_ID = 906,
       TENSOR_IS_VIRTUAL = 907,
       TENSOR_IS_BY_VALUE = 908,
       VARIANT_PACK_UNIQUE_IDS = 1000,
       VARIANT_PACK_DATA_POINTERS = 1001,
       VARIANT_PACK_WORKSPACE = 1003,
       ENGINE_GLOBAL_INDEX = 1301,
       MATMUL_COMP_TYPE = 1500,
       OP_MATMUL_ADESC = 1520,
       OP_MATMUL_BDESC = 1521,
       OP_MATMUL_CDESC = 1522,
       OP_MATMUL_MATMUL_DESC = 1523,
       REDUCTION_OPERATOR = 1600,
       REDUCTION_COMP_TYPE = 1601,
       OP_REDUCTION_XDESC = 1610,
       OP_REDUCTION_YDESC = 1611,
       OP_REDUCTION_REDUCTION_DESC = 1612,
       OP_SDPA_FWD_QDESC = 2800,
       OP_SDPA_FWD_KDESC = 2801,
       OP_SDPA_FWD_VDESC = 2802,
       OP_SDPA_FWD_ODESC = 2803,
       OP_SDPA_FWD_SCALEDESC = 2805
};
enum { /* cudnnBackendAttributeType_t */
       TYPE_HANDLE = 0,
       TYPE_DATA_TYPE = 1,
       TYPE_BOOLEAN = 2,
       TYPE_INT64 = 3,
       TYPE_FLOAT = 4,
       TYPE_VOID_PTR = 6,
       TYPE_HEUR_MODE = 8,
       TYPE_POINTWISE_MODE = 14,
       TYPE_BACKEND_DESCRIPTOR = 15,
       TYPE_REDUCTION_OPERATOR_TYPE = 18
};
enum { /* cudnnDataType_t */ F32 = 0, F16 = 2, I32 = 4, BF16 = 9, BOOL = 11 };
enum { /* cudnnPointwiseMode_t */
       PW_ADD = 0,
       PW_MUL = 1,
       PW_DIV = 6,
       PW_SUB = 9,
       PW_EXP = 13,
       PW_LOG = 15,
       PW_CMP_GE = 303,
       PW_GEN_INDEX = 501,
       PW_BINARY_SELECT = 601
};
enum { /* cudnnReduceTensorOp_t */ RED_ADD = 0, RED_MAX = 3 };
enum { /* cudnnBackendHeurMode_t */ HEUR_FALLBACK = 2, HEUR_A = 3 };

struct api {
    size_t (*GetVersion)(void);
    status_t (*Create)(handle_t *h);
    status_t (*Destroy)(handle_t h);
    status_t (*SetStream)(handle_t h, cudaStream_t s);
    const char *(*GetErrorString)(status_t st);
    void (*GetLastErrorString)(char *msg, size_t n); /* optional */
    status_t (*CreateDescriptor)(int type, desc_t *d);
    status_t (*DestroyDescriptor)(desc_t d);
    status_t (*SetAttribute)(desc_t d, int name, int type, int64_t n, const void *v);
    status_t (*GetAttribute)(desc_t d, int name, int type, int64_t n, int64_t *count, void *v);
    status_t (*Finalize)(desc_t d);
    status_t (*Execute)(handle_t h, desc_t plan, desc_t pack);
};
} // namespace dnn

#if defined(__has_include)
#if __has_include(<cudnn_graph.h>)
#include <cudnn_graph.h>
#define DNN_SAME(a, b) static_assert((int)(a) == (int)(b), #a " differs from cudnn_graph.h")
DNN_SAME(dnn::POINTWISE_DESC, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
DNN_SAME(dnn::ENGINE_DESC, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
DNN_SAME(dnn::ENGINECFG_DESC, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
DNN_SAME(dnn::ENGINEHEUR_DESC, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
DNN_SAME(dnn::EXECUTION_PLAN_DESC, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
DNN_SAME(dnn::OP_POINTWISE_DESC, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
DNN_SAME(dnn::OPERATIONGRAPH_DESC, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
DNN_SAME(dnn::VARIANT_PACK_DESC, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
DNN_SAME(dnn::TENSOR_DESC, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
DNN_SAME(dnn::MATMUL_DESC, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
DNN_SAME(dnn::OP_MATMUL_DESC, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
DNN_SAME(dnn::REDUCTION_DESC, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
DNN_SAME(dnn::OP_REDUCTION_DESC, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
DNN_SAME(dnn::OP_SDPA_FWD_DESC, CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR);
DNN_SAME(dnn::POINTWISE_MODE, CUDNN_ATTR_POINTWISE_MODE);
DNN_SAME(dnn::POINTWISE_MATH_PREC, CUDNN_ATTR_POINTWISE_MATH_PREC);
DNN_SAME(dnn::POINTWISE_AXIS, CUDNN_ATTR_POINTWISE_AXIS);
DNN_SAME(dnn::ENGINEHEUR_MODE, CUDNN_ATTR_ENGINEHEUR_MODE);
DNN_SAME(dnn::ENGINEHEUR_OPERATION_GRAPH, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH);
DNN_SAME(dnn::ENGINEHEUR_RESULTS, CUDNN_ATTR_ENGINEHEUR_RESULTS);
DNN_SAME(dnn::ENGINECFG_ENGINE, CUDNN_ATTR_ENGINECFG_ENGINE);
DNN_SAME(dnn::EXECUTION_PLAN_HANDLE, CUDNN_ATTR_EXECUTION_PLAN_HANDLE);
DNN_SAME(dnn::EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG);
DNN_SAME(dnn::EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE);
DNN_SAME(dnn::OP_POINTWISE_PW_DESCRIPTOR, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR);
DNN_SAME(dnn::OP_POINTWISE_XDESC, CUDNN_ATTR_OPERATION_POINTWISE_XDESC);
DNN_SAME(dnn::OP_POINTWISE_BDESC, CUDNN_ATTR_OPERATION_POINTWISE_BDESC);
DNN_SAME(dnn::OP_POINTWISE_YDESC, CUDNN_ATTR_OPERATION_POINTWISE_YDESC);
DNN_SAME(dnn::OP_POINTWISE_ALPHA1, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1);
DNN_SAME(dnn::OP_POINTWISE_ALPHA2, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2);
DNN_SAME(dnn::OP_POINTWISE_TDESC, CUDNN_ATTR_OPERATION_POINTWISE_TDESC);
DNN_SAME(dnn::OPERATIONGRAPH_HANDLE, CUDNN_ATTR_OPERATIONGRAPH_HANDLE);
DNN_SAME(dnn::OPERATIONGRAPH_OPS, CUDNN_ATTR_OPERATIONGRAPH_OPS);
DNN_SAME(dnn::TENSOR_BYTE_ALIGNMENT, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT);
DNN_SAME(dnn::TENSOR_DATA_TYPE, CUDNN_ATTR_TENSOR_DATA_TYPE);
DNN_SAME(dnn::TENSOR_DIMENSIONS, CUDNN_ATTR_TENSOR_DIMENSIONS);
DNN_SAME(dnn::TENSOR_STRIDES, CUDNN_ATTR_TENSOR_STRIDES);
DNN_SAME(dnn::TENSOR_UNIQUE_ID, CUDNN_ATTR_TENSOR_UNIQUE_ID);
DNN_SAME(dnn::TENSOR_IS_VIRTUAL, CUDNN_ATTR_TENSOR_IS_VIRTUAL);
DNN_SAME(dnn::TENSOR_IS_BY_VALUE, CUDNN_ATTR_TENSOR_IS_BY_VALUE);
DNN_SAME(dnn::VARIANT_PACK_UNIQUE_IDS, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS);
DNN_SAME(dnn::VARIANT_PACK_DATA_POINTERS, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS);
DNN_SAME(dnn::VARIANT_PACK_WORKSPACE, CUDNN_ATTR_VARIANT_PACK_WORKSPACE);
DNN_SAME(dnn::ENGINE_GLOBAL_INDEX, CUDNN_ATTR_ENGINE_GLOBAL_INDEX);
DNN_SAME(dnn::MATMUL_COMP_TYPE, CUDNN_ATTR_MATMUL_COMP_TYPE);
DNN_SAME(dnn::OP_MATMUL_ADESC, CUDNN_ATTR_OPERATION_MATMUL_ADESC);
DNN_SAME(dnn::OP_MATMUL_BDESC, CUDNN_ATTR_OPERATION_MATMUL_BDESC);
DNN_SAME(dnn::OP_MATMUL_CDESC, CUDNN_ATTR_OPERATION_MATMUL_CDESC);
DNN_SAME(dnn::OP_MATMUL_MATMUL_DESC, CUDNN_ATTR_OPERATION_MATMUL_DESC);
DNN_SAME(dnn::REDUCTION_OPERATOR, CUDNN_ATTR_REDUCTION_OPERATOR);
DNN_SAME(dnn::REDUCTION_COMP_TYPE, CUDNN_ATTR_REDUCTION_COMP_TYPE);
DNN_SAME(dnn::OP_REDUCTION_XDESC, CUDNN_ATTR_OPERATION_REDUCTION_XDESC);
DNN_SAME(dnn::OP_REDUCTION_YDESC, CUDNN_ATTR_OPERATION_REDUCTION_YDESC);
DNN_SAME(dnn::OP_REDUCTION_REDUCTION_DESC, CUDNN_ATTR_OPERATION_REDUCTION_DESC);
DNN_SAME(dnn::OP_SDPA_FWD_QDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC);
DNN_SAME(dnn::OP_SDPA_FWD_KDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC);
DNN_SAME(dnn::OP_SDPA_FWD_VDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC);
DNN_SAME(dnn::OP_SDPA_FWD_ODESC, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC);
DNN_SAME(dnn::OP_SDPA_FWD_SCALEDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC);
DNN_SAME(dnn::TYPE_HANDLE, CUDNN_TYPE_HANDLE);
DNN_SAME(dnn::TYPE_DATA_TYPE, CUDNN_TYPE_DATA_TYPE);
DNN_SAME(dnn::TYPE_BOOLEAN, CUDNN_TYPE_BOOLEAN);
DNN_SAME(dnn::TYPE_INT64, CUDNN_TYPE_INT64);
DNN_SAME(dnn::TYPE_FLOAT, CUDNN_TYPE_FLOAT);
DNN_SAME(dnn::TYPE_VOID_PTR, CUDNN_TYPE_VOID_PTR);
DNN_SAME(dnn::TYPE_HEUR_MODE, CUDNN_TYPE_HEUR_MODE);
DNN_SAME(dnn::TYPE_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE);
DNN_SAME(dnn::TYPE_BACKEND_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR);
DNN_SAME(dnn::TYPE_REDUCTION_OPERATOR_TYPE, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE);
DNN_SAME(dnn::F32, CUDNN_DATA_FLOAT);
DNN_SAME(dnn::F16, CUDNN_DATA_HALF);
DNN_SAME(dnn::I32, CUDNN_DATA_INT32);
DNN_SAME(dnn::BF16, CUDNN_DATA_BFLOAT16);
DNN_SAME(dnn::BOOL, CUDNN_DATA_BOOLEAN);
DNN_SAME(dnn::PW_ADD, CUDNN_POINTWISE_ADD);
DNN_SAME(dnn::PW_MUL, CUDNN_POINTWISE_MUL);
DNN_SAME(dnn::PW_DIV, CUDNN_POINTWISE_DIV);
DNN_SAME(dnn::PW_SUB, CUDNN_POINTWISE_SUB);
DNN_SAME(dnn::PW_EXP, CUDNN_POINTWISE_EXP);
DNN_SAME(dnn::PW_LOG, CUDNN_POINTWISE_LOG);
DNN_SAME(dnn::PW_CMP_GE, CUDNN_POINTWISE_CMP_GE);
DNN_SAME(dnn::PW_GEN_INDEX, CUDNN_POINTWISE_GEN_INDEX);
DNN_SAME(dnn::PW_BINARY_SELECT, CUDNN_POINTWISE_BINARY_SELECT);
DNN_SAME(dnn::RED_ADD, CUDNN_REDUCE_TENSOR_ADD);
DNN_SAME(dnn::RED_MAX, CUDNN_REDUCE_TENSOR_MAX);
DNN_SAME(dnn::HEUR_FALLBACK, CUDNN_HEUR_MODE_FALLBACK);
DNN_SAME(dnn::HEUR_A, CUDNN_HEUR_MODE_A);
#undef DNN_SAME
#endif
#endif

/* ---- the library: loaded once per process ---- */

static dnn::api D;
static bool g_loaded;
static size_t g_version;
static char g_why[320]; /* why cuDNN is unusable, when !g_loaded */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void *open_lib(const char *path, char *err, size_t n) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, n, "%s", e ? e : path);
    }
    return h;
}

/* The first loadable of dir/libcudnn.so.9, dir/libcudnn.so; path set to what opened. */
static void *open_in(const char *dir, size_t len, char *path, size_t pn, char *err, size_t en) {
    static const char *names[] = {"libcudnn.so.9", "libcudnn.so"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, pn, "%.*s/%s", (int)len, dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        void *h = open_lib(path, err, en);
        if (h) return h;
    }
    return NULL;
}

static void load_once(void) {
    char path[1024] = "", err[512] = "no libcudnn.so.9 found";
    void *h = NULL;
    const char *env = getenv("SLUICE_CUDNN_PATH");
    if (env && *env) {
        struct stat st;
        if (stat(env, &st) == 0 && S_ISDIR(st.st_mode)) {
            h = open_in(env, strlen(env), path, sizeof path, err, sizeof err);
        } else {
            snprintf(path, sizeof path, "%s", env);
            h = open_lib(env, err, sizeof err);
        }
    }
    /* LD_LIBRARY_PATH as it is now (the loader's own search saw its value at program start) */
    const char *lp = getenv("LD_LIBRARY_PATH");
    while (!h && lp && *lp) {
        const char *end = strchr(lp, ':');
        size_t len = end ? (size_t)(end - lp) : strlen(lp);
        if (len) h = open_in(lp, len, path, sizeof path, err, sizeof err);
        lp = end ? end + 1 : NULL;
    }
    if (!h) {
        snprintf(path, sizeof path, "libcudnn.so.9");
        h = open_lib(path, err, sizeof err);
    }
    if (!h) {
        snprintf(path, sizeof path, "libcudnn.so");
        h = open_lib(path, err, sizeof err);
    }
    if (!h) {
        snprintf(g_why, sizeof g_why,
                 "libcudnn.so.9 not loadable (%s); set SLUICE_CUDNN_PATH to it or its folder", err);
        return;
    }
    struct {
        const char *name;
        void **slot;
        bool optional;
    } syms[] = {
        {"cudnnGetVersion", (void **)&D.GetVersion, false},
        {"cudnnCreate", (void **)&D.Create, false},
        {"cudnnDestroy", (void **)&D.Destroy, false},
        {"cudnnSetStream", (void **)&D.SetStream, false},
        {"cudnnGetErrorString", (void **)&D.GetErrorString, false},
        {"cudnnGetLastErrorString", (void **)&D.GetLastErrorString, true},
        {"cudnnBackendCreateDescriptor", (void **)&D.CreateDescriptor, false},
        {"cudnnBackendDestroyDescriptor", (void **)&D.DestroyDescriptor, false},
        {"cudnnBackendSetAttribute", (void **)&D.SetAttribute, false},
        {"cudnnBackendGetAttribute", (void **)&D.GetAttribute, false},
        {"cudnnBackendFinalize", (void **)&D.Finalize, false},
        {"cudnnBackendExecute", (void **)&D.Execute, false},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot && !syms[i].optional) {
            snprintf(g_why, sizeof g_why, "%s lacks %s (not cuDNN 9?)", path, syms[i].name);
            dlclose(h);
            return;
        }
    }
    g_version = D.GetVersion();
    /* 9.x numbers releases major·10000 + minor·100 + patch; 9.10.0/9.10.1 have known bf16/f16
     * SDPA forward bugs (cudnn-frontend refuses them too). */
    if (g_version < 90000 || g_version == 91000 || g_version == 91001) {
        snprintf(g_why, sizeof g_why,
                 "%s is cuDNN %zu.%zu.%zu; fused attention needs 9.0+ (not 9.10.0/1)", path,
                 g_version / 10000, g_version / 100 % 100, g_version % 100);
        return; /* left loaded: unloading a library that started threads is not safe */
    }
    g_loaded = true;
    SL_DEBUG("cuda: cuDNN %zu.%zu.%zu loaded from %s", g_version / 10000, g_version / 100 % 100,
             g_version % 100, path);
}

/* ---- per-backend state: the handle and the plan cache ---- */

#define DNN_CACHE 32
#define DNN_KEEP  128 /* descriptors a plan keeps alive (the graph's tensors and ops, configs) */

enum { G_UNIFIED = 0, G_COMPOSITE = 1 };

struct dnn_plan {
    bool used, ok;
    int64_t key[10];
    int graph; /* G_UNIFIED / G_COMPOSITE */
    dnn::desc_t plan;
    int64_t ws; /* workspace bytes */
    dnn::desc_t keep[DNN_KEEP];
    int nkeep;
    uint64_t stamp;
};

struct slc_dnn {
    dnn::handle_t h;
    bool failed; /* the handle could not be created: never retried */
    char why[640];
    dnn_plan cache[DNN_CACHE];
    uint64_t clock;
};

static void plan_clear(dnn_plan *p) {
    for (int i = p->nkeep - 1; i >= 0; i--)
        if (p->keep[i]) D.DestroyDescriptor(p->keep[i]);
    memset(p, 0, sizeof *p);
}

void slc_dnn_free(sl_backend *be) {
    slc *c = SLC(be);
    if (!c || !c->dnn) return;
    for (int i = 0; i < DNN_CACHE; i++)
        if (c->dnn->cache[i].used) plan_clear(&c->dnn->cache[i]);
    if (c->dnn->h) D.Destroy(c->dnn->h);
    free(c->dnn);
    c->dnn = NULL;
}

/* "<cudnnGetErrorString> (<last error string>)" */
static void status_text(dnn::status_t st, char *buf, size_t n) {
    char last[256] = "";
    if (D.GetLastErrorString) D.GetLastErrorString(last, sizeof last);
    const char *s = D.GetErrorString ? D.GetErrorString(st) : NULL;
    snprintf(buf, n, "%s (%d)%s%.200s", s ? s : "cuDNN status", st, last[0] ? ": " : "", last);
}

/* ---- graph building: every call records the first failure; descriptors go to the plan ---- */

struct bld {
    dnn_plan *p;
    dnn::status_t st;
    const char *what; /* the step that failed */
};

static dnn::desc_t mk(bld &b, int type, const char *what) {
    if (b.st) return NULL;
    if (b.p->nkeep >= DNN_KEEP) {
        b.st = -1, b.what = "too many descriptors";
        return NULL;
    }
    dnn::desc_t d = NULL;
    dnn::status_t s = D.CreateDescriptor(type, &d);
    if (s) {
        b.st = s, b.what = what;
        return NULL;
    }
    b.p->keep[b.p->nkeep++] = d;
    return d;
}
static void set(bld &b, dnn::desc_t d, int name, int type, int64_t n, const void *v,
                const char *what) {
    if (b.st) return;
    dnn::status_t s = D.SetAttribute(d, name, type, n, v);
    if (s) b.st = s, b.what = what;
}
static void fin(bld &b, dnn::desc_t d, const char *what) {
    if (b.st) return;
    dnn::status_t s = D.Finalize(d);
    if (s) b.st = s, b.what = what;
}

/* A tensor of nd dims (strides in elements), 16-byte alignment as cuDNN's tensor-core engines want.
 */
static dnn::desc_t tensor(bld &b, int64_t uid, int dt, int nd, const int64_t *dim,
                          const int64_t *str, bool virt, bool by_value) {
    dnn::desc_t t = mk(b, dnn::TENSOR_DESC, "tensor");
    const int64_t align = 16;
    set(b, t, dnn::TENSOR_DATA_TYPE, dnn::TYPE_DATA_TYPE, 1, &dt, "tensor dtype");
    set(b, t, dnn::TENSOR_DIMENSIONS, dnn::TYPE_INT64, nd, dim, "tensor dims");
    set(b, t, dnn::TENSOR_STRIDES, dnn::TYPE_INT64, nd, str, "tensor strides");
    set(b, t, dnn::TENSOR_UNIQUE_ID, dnn::TYPE_INT64, 1, &uid, "tensor uid");
    set(b, t, dnn::TENSOR_BYTE_ALIGNMENT, dnn::TYPE_INT64, 1, &align, "tensor alignment");
    if (virt) set(b, t, dnn::TENSOR_IS_VIRTUAL, dnn::TYPE_BOOLEAN, 1, &virt, "tensor virtual");
    if (by_value)
        set(b, t, dnn::TENSOR_IS_BY_VALUE, dnn::TYPE_BOOLEAN, 1, &by_value, "tensor by value");
    fin(b, t, "tensor finalize");
    return t;
}

/* y = mode(x [, b [, t]]) computed in `prec`; axis for GEN_INDEX. */
static dnn::desc_t pointwise(bld &b, int mode, int prec, dnn::desc_t x, dnn::desc_t bb,
                             dnn::desc_t t, dnn::desc_t y, int64_t axis = -1) {
    dnn::desc_t pw = mk(b, dnn::POINTWISE_DESC, "pointwise");
    set(b, pw, dnn::POINTWISE_MODE, dnn::TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    set(b, pw, dnn::POINTWISE_MATH_PREC, dnn::TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    if (mode == dnn::PW_GEN_INDEX)
        set(b, pw, dnn::POINTWISE_AXIS, dnn::TYPE_INT64, 1, &axis, "axis");
    fin(b, pw, "pointwise finalize");
    dnn::desc_t op = mk(b, dnn::OP_POINTWISE_DESC, "pointwise op");
    const float one = 1.0f;
    set(b, op, dnn::OP_POINTWISE_PW_DESCRIPTOR, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pw desc");
    set(b, op, dnn::OP_POINTWISE_XDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &x, "pw x");
    if (bb) set(b, op, dnn::OP_POINTWISE_BDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &bb, "pw b");
    if (t) set(b, op, dnn::OP_POINTWISE_TDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &t, "pw t");
    set(b, op, dnn::OP_POINTWISE_YDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &y, "pw y");
    set(b, op, dnn::OP_POINTWISE_ALPHA1, dnn::TYPE_FLOAT, 1, &one, "pw alpha1");
    set(b, op, dnn::OP_POINTWISE_ALPHA2, dnn::TYPE_FLOAT, 1, &one, "pw alpha2");
    fin(b, op, "pointwise op finalize");
    return op;
}

static dnn::desc_t reduction(bld &b, int op_kind, dnn::desc_t x, dnn::desc_t y) {
    dnn::desc_t r = mk(b, dnn::REDUCTION_DESC, "reduction");
    const int f32 = dnn::F32;
    set(b, r, dnn::REDUCTION_COMP_TYPE, dnn::TYPE_DATA_TYPE, 1, &f32, "reduction type");
    set(b, r, dnn::REDUCTION_OPERATOR, dnn::TYPE_REDUCTION_OPERATOR_TYPE, 1, &op_kind,
        "reduction op");
    fin(b, r, "reduction finalize");
    dnn::desc_t op = mk(b, dnn::OP_REDUCTION_DESC, "reduction op");
    set(b, op, dnn::OP_REDUCTION_XDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &x, "reduction x");
    set(b, op, dnn::OP_REDUCTION_YDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &y, "reduction y");
    set(b, op, dnn::OP_REDUCTION_REDUCTION_DESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &r,
        "reduction desc");
    fin(b, op, "reduction op finalize");
    return op;
}

static dnn::desc_t matmul(bld &b, dnn::desc_t a, dnn::desc_t bm, dnn::desc_t c) {
    dnn::desc_t m = mk(b, dnn::MATMUL_DESC, "matmul");
    const int f32 = dnn::F32;
    set(b, m, dnn::MATMUL_COMP_TYPE, dnn::TYPE_DATA_TYPE, 1, &f32, "matmul type");
    fin(b, m, "matmul finalize");
    dnn::desc_t op = mk(b, dnn::OP_MATMUL_DESC, "matmul op");
    set(b, op, dnn::OP_MATMUL_ADESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &a, "matmul a");
    set(b, op, dnn::OP_MATMUL_BDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &bm, "matmul b");
    set(b, op, dnn::OP_MATMUL_CDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &c, "matmul c");
    set(b, op, dnn::OP_MATMUL_MATMUL_DESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &m, "matmul desc");
    fin(b, op, "matmul op finalize");
    return op;
}

/* Tensor ids of the variant pack. */
enum { U_Q = 1, U_K, U_V, U_O, U_SCALE, U_NEG_INF, U_VIRTUAL = 100 };

/* Shape letters: key = {B, Sq, Sk, Hq, Hk, Dh, causal, dtype, graph}. */
struct shape {
    int64_t B, Sq, Sk, Hq, Hk, Dh;
    bool causal;
    int dt; /* dnn::BF16 / dnn::F16 */
};

/* The operations of one graph into ops[]; returns their count (0 after a failure). */
static int build_ops(bld &b, const shape &s, int graph, dnn::desc_t *ops) {
    const int64_t B = s.B, Sq = s.Sq, Sk = s.Sk, Hq = s.Hq, Hk = s.Hk, Dh = s.Dh;
    /* [B, S, H, Dh] memory seen as [B, H, S, Dh] */
    const int64_t q_dim[4] = {B, Hq, Sq, Dh}, q_str[4] = {Sq * Hq * Dh, Dh, Hq * Dh, 1};
    const int64_t k_dim[4] = {B, Hk, Sk, Dh}, k_str[4] = {Sk * Hk * Dh, Dh, Hk * Dh, 1};
    dnn::desc_t Q = tensor(b, U_Q, s.dt, 4, q_dim, q_str, false, false);
    dnn::desc_t V = tensor(b, U_V, s.dt, 4, k_dim, k_str, false, false);
    dnn::desc_t O = tensor(b, U_O, s.dt, 4, q_dim, q_str, false, false);
    int n = 0;
    if (graph == G_UNIFIED) {
        const int64_t one[1] = {1};
        dnn::desc_t K = tensor(b, U_K, s.dt, 4, k_dim, k_str, false, false);
        dnn::desc_t SC = tensor(b, U_SCALE, dnn::F32, 1, one, one, false, true);
        dnn::desc_t op = mk(b, dnn::OP_SDPA_FWD_DESC, "sdpa op");
        set(b, op, dnn::OP_SDPA_FWD_QDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &Q, "sdpa q");
        set(b, op, dnn::OP_SDPA_FWD_KDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &K, "sdpa k");
        set(b, op, dnn::OP_SDPA_FWD_VDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &V, "sdpa v");
        set(b, op, dnn::OP_SDPA_FWD_ODESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &O, "sdpa o");
        set(b, op, dnn::OP_SDPA_FWD_SCALEDESC, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &SC, "sdpa scale");
        fin(b, op, "sdpa op finalize");
        ops[n++] = op;
        return b.st ? 0 : n;
    }
    /* composite: Kᵀ is K's memory with the last two dims (and strides) swapped */
    const int64_t kt_dim[4] = {B, Hk, Dh, Sk}, kt_str[4] = {Sk * Hk * Dh, Dh, 1, Hk * Dh};
    const int64_t s_dim[4] = {B, Hq, Sq, Sk}, s_str[4] = {Hq * Sq * Sk, Sq * Sk, Sk, 1};
    const int64_t r_dim[4] = {B, Hq, Sq, 1}, r_str[4] = {Hq * Sq, Sq, 1, 1};
    const int64_t one[4] = {1, 1, 1, 1};
    const int F = dnn::F32;
    int64_t u = U_VIRTUAL;
    dnn::desc_t KT = tensor(b, U_K, s.dt, 4, kt_dim, kt_str, false, false);
    dnn::desc_t SC = tensor(b, U_SCALE, F, 4, one, one, false, true);
    dnn::desc_t S = tensor(b, u++, F, 4, s_dim, s_str, true, false);
    ops[n++] = matmul(b, Q, KT, S);
    dnn::desc_t S1 = tensor(b, u++, F, 4, s_dim, s_str, true, false);
    ops[n++] = pointwise(b, dnn::PW_MUL, F, S, SC, NULL, S1);
    if (s.causal) {
        dnn::desc_t NI = tensor(b, U_NEG_INF, F, 4, one, one, false, true);
        dnn::desc_t R = tensor(b, u++, dnn::I32, 4, s_dim, s_str, true, false);
        dnn::desc_t C = tensor(b, u++, dnn::I32, 4, s_dim, s_str, true, false);
        dnn::desc_t M = tensor(b, u++, dnn::BOOL, 4, s_dim, s_str, true, false);
        dnn::desc_t S2 = tensor(b, u++, F, 4, s_dim, s_str, true, false);
        ops[n++] = pointwise(b, dnn::PW_GEN_INDEX, F, S1, NULL, NULL, R, 2);
        ops[n++] = pointwise(b, dnn::PW_GEN_INDEX, F, S1, NULL, NULL, C, 3);
        ops[n++] = pointwise(b, dnn::PW_CMP_GE, dnn::BOOL, R, C, NULL, M);
        ops[n++] = pointwise(b, dnn::PW_BINARY_SELECT, F, S1, NI, M, S2); /* M ? S1 : −inf */
        S1 = S2;
    }
    dnn::desc_t MX = tensor(b, u++, F, 4, r_dim, r_str, true, false);
    dnn::desc_t SUB = tensor(b, u++, F, 4, s_dim, s_str, true, false);
    dnn::desc_t EX = tensor(b, u++, F, 4, s_dim, s_str, true, false);
    dnn::desc_t SUM = tensor(b, u++, F, 4, r_dim, r_str, true, false);
    dnn::desc_t LG = tensor(b, u++, F, 4, r_dim, r_str, true, false);
    dnn::desc_t ST = tensor(b, u++, F, 4, r_dim, r_str, true, false);
    dnn::desc_t P = tensor(b, u++, s.dt, 4, s_dim, s_str, true, false); /* P in the I/O dtype */
    ops[n++] = reduction(b, dnn::RED_MAX, S1, MX);
    ops[n++] = pointwise(b, dnn::PW_SUB, F, S1, MX, NULL, SUB);
    ops[n++] = pointwise(b, dnn::PW_EXP, F, SUB, NULL, NULL, EX);
    ops[n++] = reduction(b, dnn::RED_ADD, EX, SUM);
    ops[n++] = pointwise(b, dnn::PW_LOG, F, SUM, NULL, NULL, LG);
    ops[n++] = pointwise(b, dnn::PW_ADD, F, MX, LG, NULL, ST); /* virtual softmax stats */
    ops[n++] = pointwise(b, dnn::PW_DIV, F, EX, SUM, NULL, P);
    ops[n++] = matmul(b, P, V, O);
    return b.st ? 0 : n;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Build p's plan for shape s with graph kind `graph`. True on success; on failure p keeps its
 * descriptors (plan_clear releases them) and msg says what failed. */
static bool build_plan(slc_dnn *d, dnn_plan *p, const shape &s, int graph, char *msg, size_t mn) {
    bld b = {p, 0, NULL};
    dnn::desc_t ops[24];
    const int nops = build_ops(b, s, graph, ops);
    dnn::desc_t g = mk(b, dnn::OPERATIONGRAPH_DESC, "operation graph");
    set(b, g, dnn::OPERATIONGRAPH_OPS, dnn::TYPE_BACKEND_DESCRIPTOR, nops, ops, "graph ops");
    /* the graph's handle is optional from 9.8 on (deprecated); older releases need it */
    if (!b.st) D.SetAttribute(g, dnn::OPERATIONGRAPH_HANDLE, dnn::TYPE_HANDLE, 1, &d->h);
    fin(b, g, "operation graph finalize");
    char last[256] = "";
    for (int pass = 0; pass < 2 && !b.st && !p->plan; pass++) {
        const int mode = pass == 0 ? dnn::HEUR_A : dnn::HEUR_FALLBACK;
        bld hb = b;
        dnn::desc_t heur = mk(hb, dnn::ENGINEHEUR_DESC, "heuristics");
        set(hb, heur, dnn::ENGINEHEUR_OPERATION_GRAPH, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &g,
            "heur graph");
        set(hb, heur, dnn::ENGINEHEUR_MODE, dnn::TYPE_HEUR_MODE, 1, &mode, "heur mode");
        fin(hb, heur, "heuristics finalize");
        /* up to 8 configurations, best first (asking for more than exist returns what exists) */
        const int64_t count = 8;
        dnn::desc_t cfg[8];
        for (int64_t i = 0; i < count; i++)
            cfg[i] = mk(hb, dnn::ENGINECFG_DESC, "engine config");
        int64_t got = 0;
        dnn::status_t hs = hb.st ? 0
                                 : D.GetAttribute(heur, dnn::ENGINEHEUR_RESULTS,
                                                  dnn::TYPE_BACKEND_DESCRIPTOR, count, &got, cfg);
        if (hs) {
            status_text(hs, last, sizeof last);
            got = 0;
        }
        if (got > count) got = count;
        if (hb.st) { /* out of descriptors or a create failure: stop */
            b = hb;
            break;
        }
        for (int64_t i = 0; i < got && !p->plan; i++) {
            bld pb = hb;
            dnn::desc_t plan = mk(pb, dnn::EXECUTION_PLAN_DESC, "execution plan");
            if (!pb.st)
                D.SetAttribute(plan, dnn::EXECUTION_PLAN_HANDLE, dnn::TYPE_HANDLE, 1, &d->h);
            set(pb, plan, dnn::EXECUTION_PLAN_ENGINE_CONFIG, dnn::TYPE_BACKEND_DESCRIPTOR, 1,
                &cfg[i], "plan config");
            fin(pb, plan, "execution plan finalize");
            if (!pb.st) {
                p->plan = plan;
            } else if (pb.what && !strcmp(pb.what, "execution plan finalize")) {
                status_text(pb.st, last, sizeof last); /* this engine refused; try the next */
            } else {
                b = pb;
                break;
            }
        }
    }
    if (!b.st && !p->plan) {
        snprintf(msg, mn, "no engine configuration finalised%s%s", last[0] ? "; last: " : "", last);
        return false;
    }
    if (b.st) {
        char t[300];
        status_text(b.st, t, sizeof t);
        snprintf(msg, mn, "%s: %s", b.what ? b.what : "?", t);
        return false;
    }
    int64_t n = 0;
    p->ws = 0;
    if (D.GetAttribute(p->plan, dnn::EXECUTION_PLAN_WORKSPACE_SIZE, dnn::TYPE_INT64, 1, &n,
                       &p->ws) ||
        p->ws < 0)
        p->ws = 0;
    return true;
}

/* ---- the entry point ---- */

static dnn_plan *find_plan(slc_dnn *d, const int64_t key[10]) {
    for (int i = 0; i < DNN_CACHE; i++)
        if (d->cache[i].used && !memcmp(d->cache[i].key, key, sizeof d->cache[i].key)) {
            d->cache[i].stamp = ++d->clock;
            return &d->cache[i];
        }
    return NULL;
}

/* An empty entry for key: a free one, else the least recently used (its plan released). */
static dnn_plan *take_plan(slc_dnn *d, dnn_plan *v, const int64_t key[10]) {
    if (!v) {
        v = &d->cache[0];
        for (int i = 0; i < DNN_CACHE; i++) {
            if (!d->cache[i].used) {
                v = &d->cache[i];
                break;
            }
            if (d->cache[i].stamp < v->stamp) v = &d->cache[i];
        }
    }
    if (v->used) plan_clear(v);
    v->used = true;
    memcpy(v->key, key, sizeof v->key);
    v->stamp = ++d->clock;
    return v;
}

/* The global index of the engine behind p's plan (for the log), or -1. */
static int64_t plan_engine(dnn_plan *p) {
    bld b = {p, 0, NULL};
    dnn::desc_t cfg = mk(b, dnn::ENGINECFG_DESC, "config"), eng = mk(b, dnn::ENGINE_DESC, "engine");
    int64_t n = 0, id = -1;
    if (b.st ||
        D.GetAttribute(p->plan, dnn::EXECUTION_PLAN_ENGINE_CONFIG, dnn::TYPE_BACKEND_DESCRIPTOR, 1,
                       &n, &cfg) ||
        D.GetAttribute(cfg, dnn::ENGINECFG_ENGINE, dnn::TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ||
        D.GetAttribute(eng, dnn::ENGINE_GLOBAL_INDEX, dnn::TYPE_INT64, 1, &n, &id))
        return -1;
    return id;
}

sl_status slc_dnn_attention(sl_backend *be, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                            const sl_tensor *v, float scale, bool causal, int64_t B, int64_t Sq,
                            int64_t Sk, int64_t Hq, int64_t Hk, int64_t Dh) {
    slc *c = SLC(be);
    pthread_once(&g_once, load_once);
    if (!g_loaded) {
        static bool logged = false; /* once per process */
        if (!logged)
            SL_DEBUG("cuda: cuDNN attention unavailable: %s; using the portable kernels", g_why);
        logged = true;
        return slc_fail(be, SL_ERR_UNSUPPORTED, "cuDNN attention: library unavailable: %s", g_why);
    }
    if (!c->dnn) {
        c->dnn = (slc_dnn *)calloc(1, sizeof *c->dnn);
        if (!c->dnn) return slc_fail(be, SL_ERR_OOM_HOST, "out of host memory for cuDNN state");
        dnn::status_t st = D.Create(&c->dnn->h);
        if (!st) st = D.SetStream(c->dnn->h, slc_stream(be));
        if (st) {
            char t[300];
            status_text(st, t, sizeof t);
            snprintf(c->dnn->why, sizeof c->dnn->why, "cudnnCreate/cudnnSetStream: %.300s", t);
            c->dnn->failed = true;
            SL_DEBUG("cuda: cuDNN attention unavailable: %s; using the portable kernels",
                     c->dnn->why);
        }
    }
    slc_dnn *d = c->dnn;
    if (d->failed)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "cuDNN attention: library unavailable: %s", d->why);

    const shape s = {B,  Sq, Sk,     Hq,
                     Hk, Dh, causal, q->dtype == SL_DTYPE_BF16 ? (int)dnn::BF16 : (int)dnn::F16};
    /* the unified SDPA operation: cuDNN 9.13.1+, and without a mask before 9.21 */
    const bool composite_only = c->attn_cudnn_composite || causal || g_version < 91301;
    const int64_t key[10] = {B, Sq, Sk, Hq, Hk, Dh, causal, s.dt, composite_only, 0};
    char what[128];
    snprintf(what, sizeof what, "B%lld Sq%lld Sk%lld H%lld/%lld Dh%lld %s%s", (long long)B,
             (long long)Sq, (long long)Sk, (long long)Hq, (long long)Hk, (long long)Dh,
             sl_dtype_name(q->dtype), causal ? " causal" : "");
    dnn_plan *p = find_plan(d, key);
    if (!p) {
        p = take_plan(d, NULL, key);
        const double t0 = now_ms();
        char msg[2][400] = {"", ""};
        bool ok = false;
        if (!composite_only) {
            p->graph = G_UNIFIED;
            ok = build_plan(d, p, s, G_UNIFIED, msg[0], sizeof msg[0]);
            if (!ok) p = take_plan(d, p, key);
        }
        if (!ok) {
            p->graph = G_COMPOSITE;
            ok = build_plan(d, p, s, G_COMPOSITE, msg[1], sizeof msg[1]);
        }
        if (!ok) {
            p = take_plan(d, p, key); /* the refusal stays cached, without descriptors */
            snprintf(d->why, sizeof d->why, "%s%.300s%s%.300s", msg[0][0] ? "unified: " : "",
                     msg[0], msg[0][0] ? "; composite: " : "", msg[1]);
            SL_DEBUG("cuda: cuDNN attention refused %s (%s); using the portable kernels", what,
                     d->why);
            return slc_fail(be, SL_ERR_UNSUPPORTED, "cuDNN attention: graph refused for %s: %s",
                            what, d->why);
        }
        p->ok = true;
        SL_DEBUG("cuda: cuDNN attention plan %s: %s graph, engine %lld, workspace %lld B, built in "
                 "%.0f ms%s%s%s",
                 what, p->graph == G_UNIFIED ? "unified" : "composite", (long long)plan_engine(p),
                 (long long)p->ws, now_ms() - t0, msg[0][0] ? " (unified refused: " : "", msg[0],
                 msg[0][0] ? ")" : "");
    }
    if (!p->ok)
        return slc_fail(be, SL_ERR_UNSUPPORTED, "cuDNN attention: graph refused for %s", what);

    void *ws = NULL;
    if (p->ws > 0) SLC_CHECK(slc_scratch(be, (size_t)p->ws, &ws));
    /* by-value scalars: host pointers, read when the plan is executed */
    const float neg_inf = -INFINITY;
    int64_t uids[6] = {U_Q, U_K, U_V, U_O, U_SCALE, U_NEG_INF};
    void *ptrs[6] = {q->data, k->data, v->data, o->data, (void *)&scale, (void *)&neg_inf};
    const int64_t np = p->graph == G_COMPOSITE && causal ? 6 : 5;
    dnn::desc_t pack = NULL;
    dnn::status_t st = D.CreateDescriptor(dnn::VARIANT_PACK_DESC, &pack);
    if (!st) st = D.SetAttribute(pack, dnn::VARIANT_PACK_UNIQUE_IDS, dnn::TYPE_INT64, np, uids);
    if (!st)
        st = D.SetAttribute(pack, dnn::VARIANT_PACK_DATA_POINTERS, dnn::TYPE_VOID_PTR, np, ptrs);
    if (!st) st = D.SetAttribute(pack, dnn::VARIANT_PACK_WORKSPACE, dnn::TYPE_VOID_PTR, 1, &ws);
    if (!st) st = D.Finalize(pack);
    if (!st) st = D.Execute(d->h, p->plan, pack);
    if (pack) D.DestroyDescriptor(pack);
    if (st) {
        char t[300];
        status_text(st, t, sizeof t);
        /* cuDNN checks before it launches: mark the shape refused and let the caller fall back */
        p->ok = false;
        SL_DEBUG("cuda: cuDNN attention execution failed for %s: %s", what, t);
        return slc_fail(be, SL_ERR_UNSUPPORTED, "cuDNN attention: execution failed for %s: %s",
                        what, t);
    }
    SLC_LAUNCHED(be);
    return SL_OK;
}
