-- Argo CD health of a Barge Job (batch.barge.dev): Healthy once SUCCEEDED, Degraded once
-- FAILED, Progressing before (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING). The message is
-- the job's statusReason, else why it is not placed yet (its Schedulable condition).
-- Argo CD runs this in gopher-lua (Lua 5.1); `obj` is the Job as the API server returns it.
local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

if obj.status == nil or obj.status.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Barge to accept the job"
  return hs
end

local state = obj.status.status
local reason = obj.status.statusReason

if state == "SUCCEEDED" then
  hs.status = "Healthy"
  hs.message = "SUCCEEDED"
  if reason ~= nil and reason ~= "" then
    hs.message = "SUCCEEDED: " .. reason
  end
  return hs
end

if state == "FAILED" then
  hs.status = "Degraded"
  hs.message = "FAILED"
  if reason ~= nil and reason ~= "" then
    hs.message = "FAILED: " .. reason
  end
  return hs
end

hs.status = "Progressing"
hs.message = state
if reason ~= nil and reason ~= "" then
  hs.message = state .. ": " .. reason
else
  local schedulable = condition("Schedulable")
  if schedulable ~= nil and schedulable.status == "False" and schedulable.message ~= nil
      and schedulable.message ~= "" then
    hs.message = state .. ": " .. schedulable.message
  end
end
return hs
