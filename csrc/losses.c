/* Losses: softmax cross-entropy (integer or distribution targets) and mean squared
 * error. Each returns the SUM of its terms in double (Python divides by the count)
 * together with the gradient of the MEAN. Per-row / per-chunk partial losses are
 * stored and summed in order, so the result does not depend on the thread count. */
#include <math.h>
#include "nn.h"

#define FC_LOSS_PARALLEL_MIN 16384
/* fixed chunk of the MSE reduction (independent of the thread count) */
#define FC_MSE_CHUNK 8192
#define FC_MSE_LANES 8

/* index of the FIRST maximum of x[0..c) */
static int64_t first_argmax(const float *x, int64_t c)
{
    int64_t k = 0;
    float m = x[0];
    for (int64_t j = 1; j < c; j++)
        if (x[j] > m) {
            m = x[j];
            k = j;
        }
    return k;
}

static double sum_in_order(const double *v, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

int fc_softmax_cross_entropy_sparse(const float *logits, const int64_t *labels,
                                    int64_t n, int64_t c, float *dlogits,
                                    double *loss_sum, int64_t *n_correct)
{
    int64_t r, correct = 0;
    double *row_loss;
    const double inv_n = n > 0 ? 1.0 / (double)n : 0.0;
    *loss_sum = 0.0;
    *n_correct = 0;
    if (n <= 0 || c <= 0)
        return FC_OK;
    row_loss = (double *)fc_malloc((size_t)n * sizeof(double));
    if (!row_loss)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) reduction(+ : correct) \
    if (n * c >= FC_LOSS_PARALLEL_MIN) num_threads(fc_get_num_threads())
    for (r = 0; r < n; r++) {
        const float *x = logits + r * c;
        float *d = dlogits + r * c; /* may alias x: every x[j] is read before d[j] is written */
        const int64_t label = labels[r];
        const int64_t k = first_argmax(x, c);
        const float m = x[k], x_label = x[label];
        double s = 0.0;
        correct += (k == label);
        for (int64_t j = 0; j < c; j++) {
            float e = expf(x[j] - m);
            d[j] = e;
            s += e;
        }
        /* -log softmax_label = log(sum exp(x - m)) - (x_label - m), never overflows */
        row_loss[r] = log(s) - ((double)x_label - (double)m);
        const double inv_s = 1.0 / s;
        const double e_label = d[label];
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)((double)d[j] * inv_s * inv_n);
        /* p - 1 in double keeps the gradient accurate for confident rows */
        d[label] = (float)((e_label * inv_s - 1.0) * inv_n);
    }
    *loss_sum = sum_in_order(row_loss, n);
    *n_correct = correct;
    fc_free(row_loss);
    return FC_OK;
}

int fc_softmax_cross_entropy_dense(const float *logits, const float *targets,
                                   int64_t n, int64_t c, float *dlogits,
                                   double *loss_sum, int64_t *n_correct)
{
    int64_t r, correct = 0;
    double *row_loss;
    const double inv_n = n > 0 ? 1.0 / (double)n : 0.0;
    *loss_sum = 0.0;
    *n_correct = 0;
    if (n <= 0 || c <= 0)
        return FC_OK;
    row_loss = (double *)fc_malloc((size_t)n * sizeof(double));
    if (!row_loss)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) reduction(+ : correct) \
    if (n * c >= FC_LOSS_PARALLEL_MIN) num_threads(fc_get_num_threads())
    for (r = 0; r < n; r++) {
        const float *x = logits + r * c;
        const float *t = targets + r * c;
        float *d = dlogits + r * c; /* may alias x (not t) */
        const int64_t k = first_argmax(x, c);
        const float m = x[k];
        double s = 0.0, t_sum = 0.0, t_dot = 0.0;
        correct += (k == first_argmax(t, c));
        for (int64_t j = 0; j < c; j++) {
            const float xj = x[j];
            const float e = expf(xj - m);
            const double tj = t[j];
            d[j] = e;
            s += e;
            if (tj != 0.0) { /* skip 0 * (-inf) terms of masked logits */
                t_sum += tj;
                t_dot += tj * ((double)xj - (double)m);
            }
        }
        /* sum_j -t_j log p_j = sum_j t_j (log s - (x_j - m)) */
        row_loss[r] = t_sum * log(s) - t_dot;
        const double inv_s = 1.0 / s;
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)(((double)d[j] * inv_s * t_sum - (double)t[j]) * inv_n);
    }
    *loss_sum = sum_in_order(row_loss, n);
    *n_correct = correct;
    fc_free(row_loss);
    return FC_OK;
}

int fc_mean_squared_error(const float *pred, const float *target, int64_t n,
                          float *dpred, double *loss_sum)
{
    int64_t k, nchunks = (n + FC_MSE_CHUNK - 1) / FC_MSE_CHUNK;
    const double g = n > 0 ? 2.0 / (double)n : 0.0;
    double *part;
    *loss_sum = 0.0;
    if (n <= 0)
        return FC_OK;
    part = (double *)fc_malloc((size_t)nchunks * sizeof(double));
    if (!part)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) if (n >= FC_LOSS_PARALLEL_MIN * 4) \
    num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++) {
        const int64_t i0 = k * FC_MSE_CHUNK;
        const int64_t i1 = i0 + FC_MSE_CHUNK < n ? i0 + FC_MSE_CHUNK : n;
        /* a fixed number of lanes (positions relative to the chunk) for ILP */
        double lane[FC_MSE_LANES] = {0.0};
        int64_t i = i0;
        for (; i + FC_MSE_LANES <= i1; i += FC_MSE_LANES)
            for (int l = 0; l < FC_MSE_LANES; l++) {
                const double dd = (double)pred[i + l] - (double)target[i + l];
                lane[l] += dd * dd;
            }
        for (int l = 0; i < i1; i++, l++) {
            const double dd = (double)pred[i] - (double)target[i];
            lane[l] += dd * dd;
        }
        double acc = 0.0;
        for (int l = 0; l < FC_MSE_LANES; l++)
            acc += lane[l];
        part[k] = acc;
        if (dpred)
            for (i = i0; i < i1; i++)
                dpred[i] = (float)(((double)pred[i] - (double)target[i]) * g);
    }
    *loss_sum = sum_in_order(part, nchunks);
    fc_free(part);
    return FC_OK;
}

/* ======================================================================== Keras 3 losses
 * fc_loss_rows (contract in losses.h). Row r's loss and gradient depend on row r only
 * (plus the batch-wide hinge label rule, decided before the parallel loop); the weighted
 * row losses are summed in order afterwards, so 1 and 2 threads give the same bits. */
#include "losses.h"

#define FC_LOSS_EPS 1e-7 /* keras.backend.epsilon() */
#define FC_LN2 0.69314718055994530942

static double clamp(double x, double lo, double hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static double sign_of(double x)
{
    return (double)((x > 0.0) - (x < 0.0));
}

/* log(1 + exp(z)) without overflow */
static double softplus(double z)
{
    return (z > 0.0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

static double sigmoid_d(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

/* Element-wise term f(y, p) and df/dp of the losses reduced over the last axis.
 * hinge_pm1: binary {0,1} labels were mapped to {-1,1} (Keras' batch-wide rule). */
static double elem_loss(int kind, double p, double y, const double *prm, int hinge_pm1,
                        double *dfdp)
{
    switch (kind) {
    case FC_LOSS_MSE: {
        const double e = p - y;
        *dfdp = 2.0 * e;
        return e * e;
    }
    case FC_LOSS_MAE:
        *dfdp = sign_of(p - y);
        return fabs(p - y);
    case FC_LOSS_MAPE: {
        const double den = fabs(y) > FC_LOSS_EPS ? fabs(y) : FC_LOSS_EPS;
        *dfdp = 100.0 * sign_of(p - y) / den;
        return 100.0 * fabs(y - p) / den;
    }
    case FC_LOSS_MSLE: {
        const double lp = log((p > FC_LOSS_EPS ? p : FC_LOSS_EPS) + 1.0);
        const double ly = log((y > FC_LOSS_EPS ? y : FC_LOSS_EPS) + 1.0);
        *dfdp = p > FC_LOSS_EPS ? 2.0 * (lp - ly) / (p + 1.0) : 0.0;
        return (lp - ly) * (lp - ly);
    }
    case FC_LOSS_HUBER: {
        const double delta = prm[FC_LP_DELTA], e = p - y, a = fabs(e);
        if (a <= delta) {
            *dfdp = e;
            return 0.5 * e * e;
        }
        *dfdp = delta * sign_of(e);
        return delta * a - 0.5 * delta * delta;
    }
    case FC_LOSS_LOGCOSH: {
        const double x = p - y;
        *dfdp = tanh(x);
        return x + softplus(-2.0 * x) - FC_LN2;
    }
    case FC_LOSS_HINGE:
    case FC_LOSS_SQUARED_HINGE: {
        const double yy = hinge_pm1 ? 2.0 * y - 1.0 : y;
        const double m = 1.0 - yy * p;
        if (m <= 0.0) {
            *dfdp = 0.0;
            return 0.0;
        }
        if (kind == FC_LOSS_HINGE) {
            *dfdp = -yy;
            return m;
        }
        *dfdp = -2.0 * m * yy;
        return m * m;
    }
    case FC_LOSS_POISSON:
        *dfdp = 1.0 - y / (p + FC_LOSS_EPS);
        return p - y * log(p + FC_LOSS_EPS);
    case FC_LOSS_KLD: {
        const double yc = clamp(y, FC_LOSS_EPS, 1.0), pc = clamp(p, FC_LOSS_EPS, 1.0);
        *dfdp = (p >= FC_LOSS_EPS && p <= 1.0) ? -yc / pc : 0.0;
        return yc * log(yc / pc);
    }
    case FC_LOSS_BCE: {
        const double pc = clamp(p, FC_LOSS_EPS, 1.0 - FC_LOSS_EPS);
        *dfdp = (p >= FC_LOSS_EPS && p <= 1.0 - FC_LOSS_EPS)
                    ? -y / pc + (1.0 - y) / (1.0 - pc) : 0.0;
        return -(y * log(pc) + (1.0 - y) * log(1.0 - pc));
    }
    case FC_LOSS_BCE_LOGITS:
        /* -y log sig(x) - (1-y) log sig(-x) = softplus(x) - x y */
        *dfdp = sigmoid_d(p) - y;
        return softplus(p) - p * y;
    case FC_LOSS_BFOCAL:
    case FC_LOSS_BFOCAL_LOGITS: {
        const double gamma = prm[FC_LP_GAMMA];
        const double s = kind == FC_LOSS_BFOCAL_LOGITS ? sigmoid_d(p) : p;
        const double pc = clamp(s, FC_LOSS_EPS, 1.0 - FC_LOSS_EPS);
        const double bce = -(y * log(pc) + (1.0 - y) * log(1.0 - pc));
        const double dbce = (s >= FC_LOSS_EPS && s <= 1.0 - FC_LOSS_EPS)
                                ? -y / pc + (1.0 - y) / (1.0 - pc) : 0.0;
        const double q = 1.0 - (y * s + (1.0 - y) * (1.0 - s)); /* 1 - p_t */
        const double ff = pow(q, gamma);
        /* d(1 - p_t)/ds = 1 - 2y */
        const double dff = gamma == 0.0 ? 0.0 : gamma * pow(q, gamma - 1.0) * (1.0 - 2.0 * y);
        double w = 1.0;
        if (prm[FC_LP_CLASS_BALANCING] != 0.0)
            w = y * prm[FC_LP_ALPHA] + (1.0 - y) * (1.0 - prm[FC_LP_ALPHA]);
        double g = w * (dff * bce + ff * dbce);
        if (kind == FC_LOSS_BFOCAL_LOGITS)
            g *= s * (1.0 - s);
        *dfdp = g;
        return w * ff * bce;
    }
    default:
        *dfdp = 0.0;
        return 0.0;
    }
}

static int is_elementwise(int kind)
{
    return kind >= FC_LOSS_MSE && kind <= FC_LOSS_BFOCAL_LOGITS;
}

static int is_binary_smoothed(int kind)
{
    return kind == FC_LOSS_BCE || kind == FC_LOSS_BCE_LOGITS || kind == FC_LOSS_BFOCAL
           || kind == FC_LOSS_BFOCAL_LOGITS;
}

/* t for row position j: the (smoothed) target, or the one-hot of the label. */
static double target_at(const float *t, int64_t label, int64_t j, double keep, double add)
{
    const double v = t ? (double)t[j] : (double)(j == label);
    return v * keep + add;
}

/* Categorical cross-entropy / focal on probabilities q = p / sum(p), clipped to
 * [eps, 1 - eps]; returns the row loss and writes dL/dp (scaled by gs) into d.
 * p_is_softmax: p came from a softmax of the logits x (d then holds dL/dx). */
static double categorical_on_probs(int kind, const float *x, const float *t, int64_t label,
                                   int64_t c, const double *prm, double keep, double add,
                                   double gs, float *d, double *buf)
{
    const int logits = kind == FC_LOSS_CFOCAL_LOGITS;
    const int focal = kind == FC_LOSS_CFOCAL || kind == FC_LOSS_CFOCAL_LOGITS;
    const double alpha = prm[FC_LP_ALPHA], gamma = prm[FC_LP_GAMMA];
    double s = 0.0, loss = 0.0, gq = 0.0;
    double *p = buf, *g = buf + c;
    if (logits) { /* p = softmax(x) in double, max-subtracted */
        double m = x[0], z = 0.0;
        for (int64_t j = 1; j < c; j++)
            if (x[j] > m)
                m = x[j];
        for (int64_t j = 0; j < c; j++) {
            p[j] = exp((double)x[j] - m);
            z += p[j];
        }
        for (int64_t j = 0; j < c; j++)
            p[j] /= z;
    } else {
        for (int64_t j = 0; j < c; j++)
            p[j] = x[j];
    }
    for (int64_t j = 0; j < c; j++)
        s += p[j];
    const double inv_s = s != 0.0 ? 1.0 / s : 0.0;
    for (int64_t j = 0; j < c; j++) {
        const double q = p[j] * inv_s;
        const double qc = clamp(q, FC_LOSS_EPS, 1.0 - FC_LOSS_EPS);
        const double y = target_at(t, label, j, keep, add);
        const int inside = q >= FC_LOSS_EPS && q <= 1.0 - FC_LOSS_EPS;
        double gj = 0.0;
        if (y != 0.0) { /* skip 0 * log(eps) terms: their value and gradient are 0 */
            const double lq = log(qc);
            if (focal) {
                const double mod = pow(1.0 - qc, gamma);
                loss += alpha * mod * (-y * lq);
                if (inside)
                    gj = alpha * (-y) * (mod / qc - (gamma == 0.0 ? 0.0 :
                                         gamma * pow(1.0 - qc, gamma - 1.0) * lq));
            } else {
                loss += -y * lq;
                if (inside)
                    gj = -y / qc;
            }
        }
        g[j] = gj;
        gq += gj * q;
    }
    if (!d)
        return loss;
    /* through q = p / s: dL/dp_j = (g_j - sum_k g_k q_k) / s */
    for (int64_t j = 0; j < c; j++)
        g[j] = (g[j] - gq) * inv_s;
    if (logits) { /* through the softmax: dL/dx_j = p_j (g_j - sum_k g_k p_k) */
        double gp = 0.0;
        for (int64_t j = 0; j < c; j++)
            gp += g[j] * p[j];
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)(p[j] * (g[j] - gp) * gs);
    } else {
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)(g[j] * gs);
    }
    return loss;
}

/* Softmax cross-entropy from logits with the arithmetic of
 * fc_softmax_cross_entropy_sparse / _dense (the same bits when unweighted). */
static double softmax_ce_row(const float *x, const float *t, int64_t label, int64_t c,
                             double keep, double add, double gs, float *d)
{
    const int64_t k = first_argmax(x, c);
    const float m = x[k];
    double s = 0.0;
    if (!t) {
        const float x_label = x[label];
        for (int64_t j = 0; j < c; j++) {
            const float e = expf(x[j] - m);
            if (d)
                d[j] = e;
            s += e;
        }
        const double loss = log(s) - ((double)x_label - (double)m);
        if (d) {
            const double inv_s = 1.0 / s, e_label = d[label];
            for (int64_t j = 0; j < c; j++)
                d[j] = (float)((double)d[j] * inv_s * gs);
            d[label] = (float)((e_label * inv_s - 1.0) * gs);
        }
        return loss;
    }
    double t_sum = 0.0, t_dot = 0.0;
    for (int64_t j = 0; j < c; j++) {
        const float xj = x[j];
        const float e = expf(xj - m);
        const double tj = (double)t[j] * keep + add;
        if (d)
            d[j] = e;
        s += e;
        if (tj != 0.0) {
            t_sum += tj;
            t_dot += tj * ((double)xj - (double)m);
        }
    }
    const double loss = t_sum * log(s) - t_dot;
    if (d) {
        const double inv_s = 1.0 / s;
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)(((double)d[j] * inv_s * t_sum - ((double)t[j] * keep + add)) * gs);
    }
    return loss;
}

static double categorical_hinge_row(const float *p, const float *t, int64_t c, double gs,
                                    float *d)
{
    double pos = 0.0, neg = 0.0;
    int64_t kn = 0;
    for (int64_t j = 0; j < c; j++) {
        const double v = (1.0 - (double)t[j]) * (double)p[j];
        pos += (double)t[j] * (double)p[j];
        if (j == 0 || v > neg) {
            neg = v;
            kn = j;
        }
    }
    const double m = neg - pos + 1.0;
    const double tk = t[kn];
    if (d) {
        for (int64_t j = 0; j < c; j++)
            d[j] = m > 0.0 ? (float)(-(double)t[j] * gs) : 0.0f;
        if (m > 0.0)
            d[kn] = (float)((1.0 - tk - tk) * gs);
    }
    return m > 0.0 ? m : 0.0;
}

/* -sum(normalize(t) * normalize(p)); normalize(v) = v * min(1/|v|, 1/eps) (Keras). */
static double cosine_row(const float *p, const float *t, int64_t c, double gs, float *d)
{
    double pp = 0.0, tt = 0.0, pt = 0.0;
    for (int64_t j = 0; j < c; j++) {
        pp += (double)p[j] * (double)p[j];
        tt += (double)t[j] * (double)t[j];
        pt += (double)p[j] * (double)t[j];
    }
    const double big = 1.0 / FC_LOSS_EPS;
    const double ip = pp > 0.0 && 1.0 / sqrt(pp) < big ? 1.0 / sqrt(pp) : big;
    const double it = tt > 0.0 && 1.0 / sqrt(tt) < big ? 1.0 / sqrt(tt) : big;
    const int p_scaled = !(pp > 0.0 && 1.0 / sqrt(pp) < big); /* inv norm clamped */
    const double loss = -pt * ip * it;
    if (d) {
        for (int64_t j = 0; j < c; j++) {
            double g = -(double)t[j] * it * ip;
            if (!p_scaled) /* d(p/|p|)/dp: (I - pn pn^T) / |p| */
                g += pt * it * ip * ip * ip * (double)p[j];
            d[j] = (float)(g * gs);
        }
    }
    return loss;
}

int fc_loss_rows(int kind, const float *pred, const float *target, const int64_t *labels,
                 int64_t rows, int64_t c, const double *params, const float *weights,
                 int64_t rows_per_weight, double grad_scale, float *dpred, double *row_out,
                 double *weighted_sum, int64_t *n_correct)
{
    int64_t r, correct = 0;
    int hinge_pm1 = 0, failed = 0;
    int64_t bad = 0;
    double *wl;
    const int sparse = kind == FC_LOSS_SPARSE_CE || kind == FC_LOSS_SPARSE_CE_LOGITS;
    const double ls = params[FC_LP_LABEL_SMOOTHING];
    double keep = 1.0, add = 0.0;
    *weighted_sum = 0.0;
    if (n_correct)
        *n_correct = 0;
    if (kind < 0 || kind >= FC_LOSS_NKINDS)
        return FC_EINVAL;
    if (rows <= 0 || c <= 0)
        return FC_OK;
    if (rows_per_weight <= 0)
        rows_per_weight = 1;
    if (ls != 0.0 && !sparse) {
        keep = 1.0 - ls;
        add = is_binary_smoothed(kind) ? 0.5 * ls : ls / (double)c;
    }
    if (kind == FC_LOSS_HINGE || kind == FC_LOSS_SQUARED_HINGE) {
        /* Keras maps labels to {-1, 1} when every label of the batch is 0 or 1 */
        int64_t i, total = rows * c;
        hinge_pm1 = 1;
        for (i = 0; i < total; i++)
            if (target[i] != 0.0f && target[i] != 1.0f) {
                hinge_pm1 = 0;
                break;
            }
    }
    wl = (double *)fc_malloc((size_t)rows * sizeof(double));
    if (!wl)
        return FC_ENOMEM;
    const int need_buf = kind == FC_LOSS_CCE || kind == FC_LOSS_SPARSE_CE
                         || kind == FC_LOSS_CFOCAL || kind == FC_LOSS_CFOCAL_LOGITS;
#pragma omp parallel num_threads(fc_get_num_threads()) \
    if (rows * c >= FC_LOSS_PARALLEL_MIN) reduction(+ : correct, failed, bad)
    {
        double *buf = need_buf ? (double *)fc_malloc((size_t)(2 * c) * sizeof(double)) : NULL;
        if (need_buf && !buf)
            failed += 1;
#pragma omp for schedule(static)
        for (r = 0; r < rows; r++) {
            const float *p = pred + r * c;
            const float *t = sparse ? NULL : target + r * c;
            float *d = dpred ? dpred + r * c : NULL;
            const double w = weights ? (double)weights[r / rows_per_weight] : 1.0;
            const double gs = w * grad_scale;
            int64_t label = -1;
            double loss = 0.0;
            if (need_buf && !buf) {
                wl[r] = 0.0;
                continue;
            }
            if (sparse) {
                label = labels[r];
                if (params[FC_LP_HAS_IGNORE] != 0.0
                    && (double)label == params[FC_LP_IGNORE_CLASS]) {
                    if (d)
                        for (int64_t j = 0; j < c; j++)
                            d[j] = 0.0f;
                    wl[r] = 0.0;
                    continue;
                }
                if (label < 0 || label >= c) { /* never index outside the row */
                    bad += 1;
                    wl[r] = 0.0;
                    continue;
                }
            }
            if (n_correct && (sparse || kind == FC_LOSS_CCE || kind == FC_LOSS_CCE_LOGITS))
                correct += first_argmax(p, c) == (sparse ? label : first_argmax(t, c));
            if (is_elementwise(kind)) {
                const double inv_c = kind == FC_LOSS_KLD ? 1.0 : 1.0 / (double)c;
                for (int64_t j = 0; j < c; j++) {
                    double g;
                    const double y = (double)t[j] * keep + add;
                    loss += elem_loss(kind, (double)p[j], y, params, hinge_pm1, &g);
                    if (d)
                        d[j] = (float)(g * inv_c * gs);
                }
                loss *= inv_c;
            } else if (kind == FC_LOSS_CCE_LOGITS || kind == FC_LOSS_SPARSE_CE_LOGITS) {
                loss = softmax_ce_row(p, t, label, c, keep, add, gs, d);
            } else if (kind == FC_LOSS_CATEGORICAL_HINGE) {
                loss = categorical_hinge_row(p, t, c, gs, d);
            } else if (kind == FC_LOSS_COSINE) {
                loss = cosine_row(p, t, c, gs, d);
            } else {
                loss = categorical_on_probs(kind, p, t, label, c, params, keep, add, gs, d, buf);
            }
            wl[r] = w * loss;
        }
        fc_free(buf);
    }
    if (failed || bad) {
        fc_free(wl);
        return failed ? FC_ENOMEM : FC_EINVAL;
    }
    *weighted_sum = sum_in_order(wl, rows);
    if (row_out)
        for (r = 0; r < rows; r++)
            row_out[r] = wl[r];
    if (n_correct)
        *n_correct = correct;
    fc_free(wl);
    return FC_OK;
}

#define FC_SIGMOID_BLOCK 4096

void fc_sigmoid_forward(const float *x, float *y, int64_t n)
{
    int64_t b, nb = (n + FC_SIGMOID_BLOCK - 1) / FC_SIGMOID_BLOCK;
#pragma omp parallel for schedule(static) if (n >= FC_LOSS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        const int64_t i1 = (b + 1) * FC_SIGMOID_BLOCK < n ? (b + 1) * FC_SIGMOID_BLOCK : n;
        for (int64_t i = b * FC_SIGMOID_BLOCK; i < i1; i++) {
            const float v = x[i];
            if (v >= 0.0f) {
                y[i] = 1.0f / (1.0f + expf(-v));
            } else if (v < 0.0f) {
                const float e = expf(v);
                y[i] = e / (1.0f + e);
            } else {
                y[i] = v; /* NaN */
            }
        }
    }
}

void fc_sigmoid_backward(const float *dy, const float *y, float *dx, int64_t n)
{
    int64_t b, nb = (n + FC_SIGMOID_BLOCK - 1) / FC_SIGMOID_BLOCK;
#pragma omp parallel for schedule(static) if (n >= FC_LOSS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        const int64_t i1 = (b + 1) * FC_SIGMOID_BLOCK < n ? (b + 1) * FC_SIGMOID_BLOCK : n;
        for (int64_t i = b * FC_SIGMOID_BLOCK; i < i1; i++) {
            const float s = y[i];
            dx[i] = dy[i] * (s * (1.0f - s));
        }
    }
}
