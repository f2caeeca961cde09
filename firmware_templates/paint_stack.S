/* void lab_paint_stack(uint32_t *from): fills [from, sp) with the paint word. A leaf that
   uses no stack, so it paints right up to its caller's stack pointer. */
    .syntax unified
    .thumb
    .text
    .global lab_paint_stack
    .type lab_paint_stack, %function
lab_paint_stack:
    mov r1, sp
    ldr r2, =0xA5A5A5A5
1:  cmp r0, r1
    bhs 2f
    str r2, [r0], #4
    b 1b
2:  bx lr
    .size lab_paint_stack, . - lab_paint_stack
