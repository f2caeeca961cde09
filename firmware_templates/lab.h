/* tinylab firmware: the interfaces between the harness, the board drivers and the workload. */
#ifndef TINYLAB_LAB_H
#define TINYLAB_LAB_H

#include <stdint.h>

/* Board support: soc/<soc>.c, uart/<kind>.c, timer/<kind>.c */
void soc_init(void);
void uart_init(void);
void uart_putc(char c);
int uart_getc(void); /* -1 when no byte is waiting */
void timer_init(void);
uint64_t timer_now(void);      /* ticks of the board's timer since timer_init */
void timer_window_start(void); /* called just before a timed window */
extern const char *const timer_name; /* "systick" or "dwt" */

/* A workload is what a timed window runs: a model, or a calibration kernel. */
typedef struct {
    const char *name;
    uint8_t *input;          /* where load_input copies the host's bytes; may be NULL */
    uint32_t input_bytes;
    const uint8_t *output;   /* read after invoke; may point into the arena */
    uint32_t output_bytes;
    uint8_t *arena;          /* painted before and scanned after, to measure bytes touched */
    uint32_t arena_bytes;
    void (*invoke)(void);
} workload_t;

extern const workload_t *const lab_workloads[];
extern const uint32_t lab_workload_count;
void lab_workloads_init(void); /* called once at start-up, before any command */

/* How `results%` prints a workload's output as real numbers (MLPerf Tiny's `m-results-[...]`
   are floats): the element type and, for a quantised integer tensor, its scale and zero point,
   value = scale * (q - zero_point). The scale is the model's float32 scale written exactly as
   scale_mantissa * 2^scale_exponent, so that the firmware prints it with integer arithmetic. */
typedef enum {
    LAB_OUTPUT_INT8,
    LAB_OUTPUT_UINT8,
    LAB_OUTPUT_INT16,
    LAB_OUTPUT_INT32,   /* printed as the raw integers */
    LAB_OUTPUT_FLOAT32, /* printed from its IEEE-754 bits */
} lab_output_type_t;

typedef struct {
    lab_output_type_t type;
    uint32_t scale_mantissa; /* 0: not quantised, the integers are printed as they are */
    int32_t scale_exponent;
    int32_t zero_point;
} lab_output_format_t;

/* The output format of a workload. Optional: a workload table that does not define it (the
   calibration kernels) gets main.c's weak default, which prints the output as int8 values. */
const lab_output_format_t *lab_output_format(const workload_t *workload);

#endif
