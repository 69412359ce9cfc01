/**
 * @file context_tool.c
 * @brief Host tool for tests/test_context.py: the device's context path (se_context ring + the
 *        native engine on the exported context plan) over a stream of edge outputs.
 *
 * Usage: context_tool EDGE_OUT_SCALE EDGE_OUT_ZP IN.bin OUT.bin
 *   IN.bin  records of 10 bytes: epoch u32 LE, present u8, edge output int8[5]
 *   OUT.bin 5 int8 head outputs per present record (absent records are only pushed)
 * Built against a model folder's context_plan.{c,h} and context_data.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "context_data.h"
#include "context_plan.h"
#include "se_context.h"
#include "se_engine.h"

static _Alignas(8) uint8_t s_arena[SE_CONTEXT_PLAN_ARENA_BYTES + 8];

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s EDGE_OUT_SCALE EDGE_OUT_ZP IN.bin OUT.bin\n", argv[0]);
        return 2;
    }
    const float in_scale = SE_CONTEXT_INPUT_SCALE;
    const se_context_quant_t q = {(float)strtod(argv[1], NULL), (int32_t)strtol(argv[2], NULL, 10),
                                  (float)(1.0 / (double)in_scale), SE_CONTEXT_INPUT_ZERO_POINT};
    FILE *fi = fopen(argv[3], "rb");
    FILE *fo = fopen(argv[4], "wb");
    if (fi == NULL || fo == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[3], argv[4]);
        return 2;
    }
    static se_context_t ctx;
    se_context_reset(&ctx);
    uint8_t rec[10];
    while (fread(rec, 1, sizeof rec, fi) == sizeof rec) {
        const uint32_t epoch = (uint32_t)rec[0] | ((uint32_t)rec[1] << 8) | ((uint32_t)rec[2] << 16) |
                               ((uint32_t)rec[3] << 24);
        if (!rec[4]) {
            se_context_push(&ctx, epoch, NULL);
            continue;
        }
        se_context_push(&ctx, epoch, (const int8_t *)&rec[5]);
        int8_t in[SE_CONTEXT_INPUT_BYTES], out[SE_N_CLASSES];
        se_context_input(&ctx, &q, in);
        const int rc = se_engine_run(&g_se_context_plan, s_arena, SE_CONTEXT_PLAN_ARENA_BYTES, in, out);
        if (rc != SE_ENGINE_OK) {
            fprintf(stderr, "se_engine_run failed: %d\n", rc);
            return 1;
        }
        if (fwrite(out, 1, sizeof out, fo) != sizeof out) {
            return 1;
        }
    }
    fclose(fi);
    return fclose(fo) == 0 ? 0 : 1;
}
