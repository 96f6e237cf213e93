/* test_log.c: core logging through the glue's callback (pp_log.c). */
#include "unit.h"

#include "pp_log.h"

static int calls;
static pp_log_level_t last_level;
static char last_msg[2048];

static void capture(pp_log_level_t level, const char *msg)
{
    calls++;
    last_level = level;
    snprintf(last_msg, sizeof(last_msg), "%s", msg);
}

static int reset(void **state)
{
    (void)state;
    calls = 0;
    last_level = 0;
    last_msg[0] = '\0';
    pp_log_set_callback(NULL);
    return 0;
}

static void test_without_callback_logging_is_silent(void **state)
{
    (void)state;
    pp_log(PP_LOG_ERR, "nobody listens %d", 1);
    assert_int_equal(calls, 0);
}

static void test_callback_gets_level_and_formatted_message(void **state)
{
    (void)state;
    pp_log_set_callback(capture);
    pp_log(PP_LOG_WARN, "store %s: %d slots", "full", 16);
    assert_int_equal(calls, 1);
    assert_int_equal(last_level, PP_LOG_WARN);
    assert_string_equal(last_msg, "store full: 16 slots");
}

static void test_long_message_is_cut_not_overflowed(void **state)
{
    char big[4000];
    (void)state;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pp_log_set_callback(capture);
    pp_log(PP_LOG_DEBUG, "%s", big);
    assert_int_equal(calls, 1);
    assert_true(strlen(last_msg) > 100 && strlen(last_msg) < sizeof(big));
    assert_memory_equal(last_msg, big, strlen(last_msg));
}

static void test_callback_can_be_removed(void **state)
{
    (void)state;
    pp_log_set_callback(capture);
    pp_log_set_callback(NULL);
    pp_log(PP_LOG_INFO, "gone");
    assert_int_equal(calls, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, reset, reset)
    const struct CMUnitTest tests[] = {
        T(test_without_callback_logging_is_silent),
        T(test_callback_gets_level_and_formatted_message),
        T(test_long_message_is_cut_not_overflowed),
        T(test_callback_can_be_removed),
    };
#undef T
    return cmocka_run_group_tests_name("pp_log", tests, NULL, NULL);
}
